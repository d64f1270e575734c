// Galley's /storage/v1 driven by the real @supabase/supabase-js client (storage-js),
// once per backend: the first Galley keeps objects on its local disk, the second (on the
// same database, started by scripts/test) in an S3 bucket of a local S3 server (moto).
import { describe, test, before } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomUUID, createHash } from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import ws from "ws";
import http from "node:http";
import zlib from "node:zlib";
import * as tus from "tus-js-client";

const backends = [
  { name: "local disk", url: process.env.SDK_URL },
  ...(process.env.SDK_URL2 ? [{ name: "S3", url: process.env.SDK_URL2 }] : []),
];
const anonKey = process.env.SDK_ANON_KEY;
const serviceKey = process.env.SDK_SERVICE_KEY;
const secret = process.env.SDK_JWT_SECRET;

function userToken(sub) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const header = encode({ alg: "HS256", typ: "JWT" });
  const payload = encode({ sub, role: "authenticated", aud: "authenticated", exp: Math.floor(Date.now() / 1000) + 3600 });
  const signature = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

function clientFor(url, key, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  return createClient(url, key, {
    global: { headers },
    auth: { persistSession: false },
    realtime: { transport: ws },
  });
}

async function sql(url, text) {
  const response = await fetch(`${url}/admin/v1/sql`, {
    method: "POST",
    headers: { authorization: `Bearer ${serviceKey}`, "content-type": "application/json" },
    body: JSON.stringify({ sql: text, commit: true }),
  });
  assert.ok(response.ok, `${text}: ${response.status} ${await response.text()}`);
}

const run = randomUUID().slice(0, 8);

// Policies laid out as Supabase's documentation writes them: each user owns the folder
// named after their id, in the buckets of this run.
before(async () => {
  const url = backends[0].url;
  const buckets = `bucket_id LIKE 'files-${run}-%'`;
  await sql(
    url,
    `CREATE POLICY "read own ${run}" ON storage.objects FOR SELECT TO authenticated
       USING (${buckets} AND (storage.foldername(name))[1] = auth.uid()::text);
     CREATE POLICY "write own ${run}" ON storage.objects FOR INSERT TO authenticated
       WITH CHECK (${buckets} AND (storage.foldername(name))[1] = auth.uid()::text);
     CREATE POLICY "update own ${run}" ON storage.objects FOR UPDATE TO authenticated
       USING (${buckets} AND (storage.foldername(name))[1] = auth.uid()::text);
     CREATE POLICY "delete own ${run}" ON storage.objects FOR DELETE TO authenticated
       USING (${buckets} AND (storage.foldername(name))[1] = auth.uid()::text)`,
  );
});

const text = (blob) => blob.text();

/** A PNG of `width`×`height` RGB pixels, `pixel(x, y)` giving each [r, g, b]. */
function png(width, height, pixel) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([length, body, sum]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const rows = [];
  for (let y = 0; y < height; y++) {
    rows.push(0);
    for (let x = 0; x < width; x++) rows.push(...pixel(x, y));
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", zlib.deflateSync(Buffer.from(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** The width and height a PNG's header declares. */
function pngSize(bytes) {
  const buffer = Buffer.from(bytes);
  assert.equal(buffer.subarray(1, 4).toString("ascii"), "PNG");
  return [buffer.readUInt32BE(16), buffer.readUInt32BE(20)];
}

for (const backend of backends) {
  describe(`storage on ${backend.name}`, () => {
    const url = backend.url;
    const service = clientFor(url, serviceKey);
    const alice = randomUUID();
    const bob = randomUUID();
    const asAlice = clientFor(url, anonKey, userToken(alice));
    const asBob = clientFor(url, anonKey, userToken(bob));
    const anon = clientFor(url, anonKey);
    const tag = backend.name === "S3" ? "s3" : "local";
    const files = `files-${run}-${tag}`;
    const pics = `pics-${run}-${tag}`;

    before(async () => {
      const made = await service.storage.createBucket(files, { public: false });
      assert.equal(made.error, null);
      assert.deepEqual(made.data, { name: files });
      const pub = await service.storage.createBucket(pics, {
        public: true,
        fileSizeLimit: 1024,
        allowedMimeTypes: ["image/*"],
      });
      assert.equal(pub.error, null);
    });

    test("buckets: create, get, list, update, empty and delete as service_role", async () => {
      const id = `life-${run}-${tag}`;
      assert.equal((await service.storage.createBucket(id)).error, null);
      const again = await service.storage.createBucket(id);
      assert.equal(again.error.statusCode, "409");
      assert.equal(again.error.message, "The resource already exists");

      const got = await service.storage.getBucket(id);
      assert.equal(got.error, null);
      assert.deepEqual(Object.keys(got.data), [
        "id", "name", "owner", "public", "file_size_limit", "allowed_mime_types", "created_at", "updated_at",
      ]);
      assert.equal(got.data.public, false);
      assert.match(got.data.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

      const listed = await service.storage.listBuckets();
      assert.ok(listed.data.some((bucket) => bucket.id === id && bucket.type === "STANDARD"));

      const updated = await service.storage.updateBucket(id, {
        public: true,
        fileSizeLimit: "2MB",
        allowedMimeTypes: ["text/plain"],
      });
      assert.equal(updated.error, null);
      assert.deepEqual(updated.data, { message: "Successfully updated" });
      const after = await service.storage.getBucket(id);
      assert.equal(after.data.public, true);
      assert.equal(after.data.file_size_limit, 2_000_000);
      assert.deepEqual(after.data.allowed_mime_types, ["text/plain"]);

      await service.storage.from(id).upload("a.txt", "a", { contentType: "text/plain" });
      const refused = await service.storage.deleteBucket(id);
      assert.equal(refused.error.message, "The bucket you tried to delete is not empty");
      const emptied = await service.storage.emptyBucket(id);
      assert.equal(emptied.error, null);
      assert.equal((await service.storage.from(id).list()).data.length, 0);
      assert.deepEqual((await service.storage.deleteBucket(id)).data, { message: "Successfully deleted" });
      const gone = await service.storage.getBucket(id);
      assert.equal(gone.error.message, "Bucket not found");

      // An app user has no policy on buckets: nothing is listed, nothing can be made.
      assert.deepEqual((await asAlice.storage.listBuckets()).data, []);
      const denied = await asAlice.storage.createBucket(`nope-${run}`);
      assert.equal(denied.error.statusCode, "403");
      assert.equal(denied.error.message, "new row violates row-level security policy");
    });

    test("a user uploads to their own folder, lists, downloads and signs a URL anyone can use until it expires", async () => {
      const bytes = new Blob([`hello from alice ${tag}`], { type: "text/plain" });
      const up = await asAlice.storage.from(files).upload(`${alice}/notes/hello.txt`, bytes, {
        metadata: { kind: "greeting" },
      });
      assert.equal(up.error, null);
      assert.equal(up.data.path, `${alice}/notes/hello.txt`);
      assert.equal(up.data.fullPath, `${files}/${alice}/notes/hello.txt`);
      assert.match(up.data.id, /^[0-9a-f-]{36}$/);

      const top = await asAlice.storage.from(files).list(alice);
      assert.equal(top.error, null);
      assert.deepEqual(top.data.map((entry) => [entry.name, entry.id]), [["notes", null]]);
      const inner = await asAlice.storage.from(files).list(`${alice}/notes`);
      assert.equal(inner.data.length, 1);
      assert.equal(inner.data[0].name, "hello.txt");
      assert.equal(inner.data[0].metadata.size, `hello from alice ${tag}`.length);
      assert.equal(inner.data[0].metadata.mimetype, "text/plain");
      assert.equal(inner.data[0].metadata.cacheControl, "max-age=3600");

      const down = await asAlice.storage.from(files).download(`${alice}/notes/hello.txt`);
      assert.equal(down.error, null);
      assert.equal(await text(down.data), `hello from alice ${tag}`);

      const info = await asAlice.storage.from(files).info(`${alice}/notes/hello.txt`);
      assert.equal(info.error, null);
      assert.equal(info.data.contentType, "text/plain");
      assert.deepEqual(info.data.metadata, { kind: "greeting" });
      assert.equal((await asAlice.storage.from(files).exists(`${alice}/notes/hello.txt`)).data, true);
      assert.equal((await asAlice.storage.from(files).exists(`${alice}/notes/missing.txt`)).data, false);

      const signed = await asAlice.storage.from(files).createSignedUrl(`${alice}/notes/hello.txt`, 2);
      assert.equal(signed.error, null);
      const fetched = await fetch(signed.data.signedUrl);
      assert.equal(fetched.status, 200);
      assert.equal(await fetched.text(), `hello from alice ${tag}`);
      assert.ok(fetched.headers.get("expires"));
      const attachment = await asAlice.storage
        .from(files)
        .createSignedUrl(`${alice}/notes/hello.txt`, 60, { download: "greeting.txt" });
      const disposed = await fetch(attachment.data.signedUrl);
      assert.match(disposed.headers.get("content-disposition"), /^attachment; filename=greeting\.txt/);

      const many = await asAlice.storage.from(files).createSignedUrls([`${alice}/notes/hello.txt`, `${bob}/x.txt`], 60);
      assert.equal(many.error, null);
      assert.equal(many.data[0].error, null);
      assert.ok(many.data[0].signedUrl);
      assert.equal(many.data[1].error, "Either the object does not exist or you do not have access to it");

      await new Promise((ok) => setTimeout(ok, 3100));
      const expired = await fetch(signed.data.signedUrl);
      assert.equal(expired.status, 400);
      const body = await expired.json();
      assert.deepEqual(body, {
        statusCode: "400",
        error: "InvalidJWT",
        message: '"exp" claim timestamp check failed',
        code: "InvalidJWT",
      });
    });

    test("another user can neither read nor overwrite it, nor write into the owner's folder", async () => {
      const path = `${alice}/private.txt`;
      assert.equal((await asAlice.storage.from(files).upload(path, "mine", { contentType: "text/plain" })).error, null);
      const read = await asBob.storage.from(files).download(path);
      assert.ok(read.error);
      assert.equal(read.error.status, 400);
      const listed = await asBob.storage.from(files).list(alice);
      assert.deepEqual(listed.data, []);
      const overwrite = await asBob.storage.from(files).upload(path, "theirs", { upsert: true, contentType: "text/plain" });
      assert.equal(overwrite.error.statusCode, "403");
      assert.equal(overwrite.error.message, "new row violates row-level security policy");
      const intrude = await asBob.storage.from(files).upload(`${alice}/planted.txt`, "x", { contentType: "text/plain" });
      assert.equal(intrude.error.statusCode, "403");
      const sign = await asBob.storage.from(files).createSignedUrl(path, 60);
      assert.equal(sign.error.message, "Object not found");
      const moved = await asBob.storage.from(files).move(path, `${bob}/stolen.txt`);
      assert.equal(moved.error.message, "Object not found");
      const removed = await asBob.storage.from(files).remove([path]);
      assert.deepEqual(removed.data, []);
      assert.equal(await text((await asAlice.storage.from(files).download(path)).data), "mine");
      // Anonymous callers see nothing of a private bucket.
      assert.equal((await anon.storage.from(files).download(path)).error.status, 400);
      const direct = await fetch(`${url}/storage/v1/object/${files}/${path}`);
      assert.equal((await direct.json()).message, "Bucket not found");
    });

    test("public bucket URLs work without a key; size and type limits are refused in Supabase's words", async () => {
      const png = new Blob([Buffer.from("89504e470d0a1a0a", "hex")], { type: "image/png" });
      assert.equal((await service.storage.from(pics).upload("logo.png", png)).error, null);
      const { data } = anon.storage.from(pics).getPublicUrl("logo.png");
      const response = await fetch(data.publicUrl);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "image/png");
      assert.equal(response.headers.get("x-content-type-options"), "nosniff");
      assert.equal(Buffer.from(await response.arrayBuffer()).toString("hex"), "89504e470d0a1a0a");
      const etag = response.headers.get("etag");
      assert.equal(etag, `"${createHash("md5").update(Buffer.from("89504e470d0a1a0a", "hex")).digest("hex")}"`);
      const cached = await fetch(data.publicUrl, { headers: { "if-none-match": etag } });
      assert.equal(cached.status, 304);
      const ranged = await fetch(data.publicUrl, { headers: { range: "bytes=1-3" } });
      assert.equal(ranged.status, 206);
      assert.equal(ranged.headers.get("content-range"), "bytes 1-3/8");
      assert.equal(Buffer.from(await ranged.arrayBuffer()).toString("hex"), "504e47");
      const bad = await fetch(data.publicUrl, { headers: { range: "bytes=100-" } });
      assert.equal(bad.status, 416);

      const large = new Blob([Buffer.alloc(2048)], { type: "image/png" });
      const tooLarge = await service.storage.from(pics).upload("large.png", large);
      assert.equal(tooLarge.error.statusCode, "413");
      assert.equal(tooLarge.error.message, "The object exceeded the maximum allowed size");
      const wrongType = await service.storage.from(pics).upload("notes.txt", "x", { contentType: "text/plain" });
      assert.equal(wrongType.error.statusCode, "415");
      assert.equal(wrongType.error.message, "mime type text/plain is not supported");
      assert.equal((await service.storage.from(pics).exists("large.png")).data, false);

      // A private bucket is not reachable through the public route.
      const hidden = await fetch(`${url}/storage/v1/object/public/${files}/${alice}/private.txt`);
      assert.equal((await hidden.json()).message, "Bucket not found");
    });

    test("upsert, move, copy and remove", async () => {
      const bucket = service.storage.from(files);
      assert.equal((await bucket.upload("shared/a.txt", "one", { contentType: "text/plain" })).error, null);
      const dup = await bucket.upload("shared/a.txt", "two", { contentType: "text/plain" });
      assert.equal(dup.error.statusCode, "409");
      assert.equal((await bucket.upload("shared/a.txt", "two", { contentType: "text/plain", upsert: true })).error, null);
      assert.equal(await text((await bucket.download("shared/a.txt")).data), "two");
      assert.equal((await bucket.update("shared/a.txt", "three", { contentType: "text/plain" })).error, null);
      assert.equal(await text((await bucket.download("shared/a.txt")).data), "three");

      const copied = await bucket.copy("shared/a.txt", "shared/b.txt");
      assert.equal(copied.error, null);
      assert.equal(copied.data.path, `${files}/shared/b.txt`);
      assert.equal(await text((await bucket.download("shared/b.txt")).data), "three");
      const moved = await bucket.move("shared/b.txt", "shared/c.txt");
      assert.deepEqual(moved.data, { message: "Successfully moved" });
      assert.equal(await text((await bucket.download("shared/c.txt")).data), "three");
      assert.equal((await bucket.exists("shared/b.txt")).data, false);
      const onto = await bucket.move("shared/c.txt", "shared/a.txt");
      assert.equal(onto.error.statusCode, "409");

      const removed = await bucket.remove(["shared/a.txt", "shared/c.txt", "shared/none.txt"]);
      assert.equal(removed.error, null);
      assert.deepEqual(removed.data.map((row) => row.name).sort(), ["shared/a.txt", "shared/c.txt"]);
      assert.deepEqual(Object.keys(removed.data[0]), [
        "name", "bucket_id", "owner", "owner_id", "version", "id", "updated_at", "created_at",
        "last_accessed_at", "metadata", "user_metadata",
      ]);
      assert.deepEqual((await bucket.list("shared")).data, []);
    });

    test("a user's own copy, move and signed upload URL", async () => {
      const mine = asAlice.storage.from(files);
      assert.equal((await mine.upload(`${alice}/one.txt`, "1", { contentType: "text/plain" })).error, null);
      assert.equal((await mine.copy(`${alice}/one.txt`, `${alice}/two.txt`)).error, null);
      const outside = await mine.copy(`${alice}/one.txt`, `${bob}/one.txt`);
      assert.equal(outside.error.statusCode, "403");
      assert.equal((await mine.move(`${alice}/two.txt`, `${alice}/deep/two.txt`)).error, null);
      const away = await mine.move(`${alice}/one.txt`, `${bob}/one.txt`);
      assert.equal(away.error.statusCode, "403");

      const signed = await mine.createSignedUploadUrl(`${alice}/signed.txt`);
      assert.equal(signed.error, null);
      // Anyone holding the URL may upload, once, to that path.
      const uploaded = await anon.storage.from(files).uploadToSignedUrl(signed.data.path, signed.data.token, "via url", {
        contentType: "text/plain",
      });
      assert.equal(uploaded.error, null);
      assert.equal(uploaded.data.fullPath, `${files}/${alice}/signed.txt`);
      assert.equal(await text((await mine.download(`${alice}/signed.txt`)).data), "via url");
      const forbidden = await asBob.storage.from(files).createSignedUploadUrl(`${alice}/x.txt`);
      assert.equal(forbidden.error.statusCode, "403");

      // The same token authorises a resumable upload (x-signature), for that path only.
      const resumable = await mine.createSignedUploadUrl(`${alice}/signed-tus.bin`);
      const tusUpload = (objectName, signature) =>
        new Promise((resolve, reject) => {
          const upload = new tus.Upload(Buffer.alloc(300_000, 7), {
            endpoint: `${url}/storage/v1/upload/resumable/sign`,
            headers: { "x-signature": signature },
            metadata: { bucketName: files, objectName, contentType: "application/octet-stream" },
            chunkSize: 100_000,
            retryDelays: [],
            onSuccess: () => resolve(upload.url),
            onError: reject,
          });
          upload.start();
        });
      const done = await tusUpload(`${alice}/signed-tus.bin`, resumable.data.token);
      assert.match(done, /\/storage\/v1\/upload\/resumable\/sign\/[0-9a-f-]{36}$/);
      const landed = await mine.info(`${alice}/signed-tus.bin`);
      assert.equal(landed.error, null);
      assert.equal(landed.data.size, 300_000);
      await assert.rejects(tusUpload(`${alice}/elsewhere.bin`, resumable.data.token), /response code: 400/);
      assert.equal((await mine.exists(`${alice}/elsewhere.bin`)).data, false);
    });

    // A request sent exactly as written, with the service key.
    function raw(method, path, body) {
      const target = new URL(url);
      return new Promise((resolve, reject) => {
        const request = http.request(
          {
            host: target.hostname,
            port: target.port,
            method,
            path,
            headers: { authorization: `Bearer ${serviceKey}`, "content-type": "text/plain" },
          },
          (response) => {
            let text = "";
            response.on("data", (chunk) => (text += chunk));
            response.on("end", () => resolve({ status: response.statusCode, body: text }));
          },
        );
        request.on("error", reject);
        request.end(body);
      });
    }

    test("path traversal and malformed keys are refused, and nothing is written", async () => {
      const bucket = service.storage.from(files);
      // Sent as written (fetch would resolve the dots itself).
      for (const key of ["../escape.txt", "a/../../escape.txt", "a/./b.txt", "%2e%2e/escape.txt", "nul%00.txt", "ctl%01.txt", "/abs.txt", "a//b.txt"]) {
        const { status, body } = await raw("POST", `/storage/v1/object/${files}/${key}`, "x");
        assert.equal(status, 400, key);
        assert.equal(JSON.parse(body).code, "InvalidKey", `${key}: ${body}`);
      }
      for (const key of ["../escape.txt", "%2e%2e/%2e%2e/escape.txt"]) {
        const { status } = await raw("GET", `/storage/v1/object/${files}/${key}`);
        assert.equal(status, 400, key);
      }
      const listed = await bucket.list("", { limit: 1000 });
      assert.ok(!listed.data.some((entry) => entry.name.includes("escape")));
      const badBucket = await fetch(`${url}/storage/v1/object/..%2F..%2Fetc/passwd`, {
        headers: { authorization: `Bearer ${serviceKey}` },
      });
      assert.equal(badBucket.status, 400);
    });

    test("a 50 MB resumable upload is interrupted, resumed and stored whole", async () => {
      const size = 50 * 1024 * 1024;
      const bytes = Buffer.alloc(size);
      for (let i = 0; i < size; i += 4096) bytes.writeUInt32LE((i * 2654435761) >>> 0, i);
      const path = `${alice}/big.bin`;
      const started = [];
      const make = (onProgress) =>
        new tus.Upload(bytes, {
          endpoint: `${url}/storage/v1/upload/resumable`,
          headers: { authorization: `Bearer ${userToken(alice)}`, "x-upsert": "true" },
          uploadDataDuringCreation: true,
          removeFingerprintOnSuccess: true,
          metadata: { bucketName: files, objectName: path, contentType: "application/octet-stream", cacheControl: "3600" },
          chunkSize: 6 * 1024 * 1024,
          retryDelays: [],
          onProgress,
          onAfterResponse: (req, res) => started.push([req.getMethod(), res.getStatus()]),
        });
      // Abort once about 20 MB are in, mid-chunk.
      const interrupted = await new Promise((resolve, reject) => {
        const upload = make((sent) => {
          if (sent > 20 * 1024 * 1024 && !upload.aborted) {
            upload.aborted = true;
            upload.abort().then(() => resolve(upload.url), reject);
          }
        });
        upload.options.onError = reject;
        upload.start();
      });
      assert.match(interrupted, /\/storage\/v1\/upload\/resumable\/[0-9a-f-]{36}$/);
      // What the server kept: between the last whole chunk and what was sent.
      const probe = await fetch(interrupted, {
        method: "HEAD",
        headers: { authorization: `Bearer ${userToken(alice)}`, "tus-resumable": "1.0.0" },
      });
      assert.equal(probe.status, 200);
      const kept = Number(probe.headers.get("upload-offset"));
      assert.ok(kept > 0 && kept < size, `offset ${kept}`);
      assert.equal(probe.headers.get("upload-length"), String(size));
      // Another user cannot see or continue it.
      const other = await fetch(interrupted, {
        method: "HEAD",
        headers: { authorization: `Bearer ${userToken(bob)}`, "tus-resumable": "1.0.0" },
      });
      assert.equal(other.status, 404);

      await new Promise((resolve, reject) => {
        const upload = make(() => {});
        upload.url = interrupted;
        upload.options.uploadUrl = interrupted;
        upload.options.onSuccess = resolve;
        upload.options.onError = reject;
        upload.start();
      });
      const down = await asAlice.storage.from(files).download(path);
      assert.equal(down.error, null);
      const got = Buffer.from(await down.data.arrayBuffer());
      assert.equal(got.length, size);
      assert.ok(got.equals(bytes), "the stored bytes are the uploaded ones");
      const info = await asAlice.storage.from(files).info(path);
      assert.equal(info.data.etag, `"${createHash("md5").update(bytes).digest("hex")}"`);
      assert.equal(info.data.cacheControl, "max-age=3600");

      // Someone else's folder is refused at creation, in TUS's plain words.
      const refused = await fetch(`${url}/storage/v1/upload/resumable`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${userToken(bob)}`,
          "tus-resumable": "1.0.0",
          "upload-length": "10",
          "upload-metadata": `bucketName ${Buffer.from(files).toString("base64")},objectName ${Buffer.from(`${alice}/x.bin`).toString("base64")}`,
        },
      });
      assert.equal(refused.status, 403);
      assert.equal(await refused.text(), "new row violates row-level security policy\n");
    });

    test("images are resized and converted on download, by public URL and by a signed URL that fixes the transformation", async () => {
      const images = `img-${run}-${tag}`;
      assert.equal((await service.storage.createBucket(images, { public: true })).error, null);
      const source = png(64, 32, (x, y) => [x * 4, y * 8, 128]);
      const up = await service.storage.from(images).upload("photo.png", source, { contentType: "image/png" });
      assert.equal(up.error, null);

      // Cover (the default): 64×32 scaled to fill 16×16, then cropped to it.
      const down = await service.storage.from(images).download("photo.png", { transform: { width: 16, height: 16 } });
      assert.equal(down.error, null);
      assert.deepEqual(pngSize(await down.data.arrayBuffer()), [16, 16]);

      // A public URL: WebP for a client that takes it, and revalidated by its ETag.
      const { data: pub } = service.storage.from(images).getPublicUrl("photo.png", { transform: { width: 32, resize: "contain" } });
      assert.match(pub.publicUrl, /\/storage\/v1\/render\/image\/public\/img-[^/]+\/photo\.png\?width=32&resize=contain$/);
      const webp = await fetch(pub.publicUrl, { headers: { accept: "image/avif,image/webp,*/*" } });
      assert.equal(webp.status, 200);
      assert.equal(webp.headers.get("content-type"), "image/webp");
      assert.equal(webp.headers.get("x-content-type-options"), "nosniff");
      const riff = Buffer.from(await webp.arrayBuffer());
      assert.equal(riff.subarray(0, 4).toString("ascii"), "RIFF");
      assert.equal(riff.subarray(8, 12).toString("ascii"), "WEBP");
      const again = await fetch(pub.publicUrl, {
        headers: { accept: "image/webp", "if-none-match": webp.headers.get("etag") },
      });
      assert.equal(again.status, 304);
      const plain = await fetch(pub.publicUrl);
      assert.equal(plain.headers.get("content-type"), "image/png");
      assert.deepEqual(pngSize(await plain.arrayBuffer()), [32, 16]);

      // A signed URL: the token's transformation, whatever the query says.
      const signed = await service.storage
        .from(images)
        .createSignedUrl("photo.png", 60, { transform: { width: 8, height: 8, resize: "fill", format: "origin" } });
      assert.equal(signed.error, null);
      assert.match(signed.data.signedUrl, /\/storage\/v1\/render\/image\/sign\//);
      const fixed = await fetch(`${signed.data.signedUrl}&width=64`, { headers: { accept: "image/webp" } });
      assert.equal(fixed.status, 200);
      assert.deepEqual(pngSize(await fixed.arrayBuffer()), [8, 8]);

      // Options out of range and objects that are not images are refused in Supabase's shape.
      const wide = await service.storage.from(images).download("photo.png", { transform: { width: 3000 } });
      assert.equal(wide.error.message, "querystring/width must be <= 2500");
      await service.storage.from(images).upload("note.txt", "not an image", { contentType: "text/plain" });
      const notImage = await fetch(`${url}/storage/v1/render/image/public/${images}/note.txt?width=10`);
      assert.equal(notImage.status, 400);
      assert.deepEqual(await notImage.json(), {
        statusCode: "400",
        error: "InvalidRequest",
        message: "Image transformation supports PNG, JPEG, WebP and GIF sources",
        code: "InvalidRequest",
      });
      // A private bucket's images render only for those its rules let read them.
      const hidden = await asAlice.storage.from(files).download(`${bob}/x.png`, { transform: { width: 10 } });
      assert.equal(hidden.error.statusCode, "404");
      assert.equal(hidden.error.message, "Object not found");
    });

    test("list pages, sorts and searches like Supabase", async () => {
      const bucket = service.storage.from(files);
      for (const name of ["b.txt", "a.txt", "C.txt", "dir/x.txt"]) {
        assert.equal((await bucket.upload(`paged/${name}`, name, { contentType: "text/plain" })).error, null);
      }
      const all = await bucket.list("paged");
      assert.deepEqual(all.data.map((e) => e.name), ["a.txt", "b.txt", "C.txt", "dir"]);
      const page = await bucket.list("paged", { limit: 2, offset: 1 });
      assert.deepEqual(page.data.map((e) => e.name), ["b.txt", "C.txt"]);
      const desc = await bucket.list("paged", { sortBy: { column: "name", order: "desc" } });
      assert.deepEqual(desc.data.map((e) => e.name), ["dir", "C.txt", "b.txt", "a.txt"]);
      const found = await bucket.list("paged", { search: "c" });
      assert.deepEqual(found.data.map((e) => e.name), ["C.txt"]);
      const missing = await service.storage.from(`nope-${run}`).list("");
      assert.deepEqual(missing.data, []);
    });
  });
}
