import { defineConfig } from 'vitest/config';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The build is committed (dist/) and embedded in the galley binary, which serves it at
// /admin/ with ETags: file names stay stable (no content hashes), so a rebuild of the
// same source is byte-identical and CI can compare it with what is committed.
export default defineConfig({
  base: '/admin/',
  plugins: [svelte()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    rollupOptions: {
      output: {
        entryFileNames: 'assets/[name].js',
        chunkFileNames: 'assets/[name].js',
        assetFileNames: 'assets/[name][extname]',
      },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
  },
});
