// The PostgREST dialect, Tier 1 and Tier 2, through the real @supabase/supabase-js: embeds,
// every filter, ordering, paging, counts, media types, Prefer, RPC and aggregates.
// The tables are made with psql, as an operator would, so this also shows that Galley
// serves what it did not create, without a restart.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { createHmac, randomUUID } from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import ws from "ws";

const url = process.env.SDK_URL;
const anonKey = process.env.SDK_ANON_KEY;
const secret = process.env.SDK_JWT_SECRET;
const dbUrl = process.env.SDK_DB_URL;

function userToken(sub) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const header = encode({ alg: "HS256", typ: "JWT" });
  const payload = encode({ sub, role: "authenticated", aud: "authenticated", exp: Math.floor(Date.now() / 1000) + 3600 });
  const signature = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

function clientFor(token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  return createClient(url, anonKey, { global: { headers }, auth: { persistSession: false }, realtime: { transport: ws } });
}

function psqlPath() {
  const root = "/usr/lib/postgresql";
  for (const version of existsSync(root) ? readdirSync(root).sort().reverse() : []) {
    const candidate = `${root}/${version}/bin/psql`;
    if (existsSync(candidate)) return candidate;
  }
  return "psql";
}

function sql(text) {
  return execFileSync(psqlPath(), [dbUrl, "-v", "ON_ERROR_STOP=1", "-qAtc", text], { encoding: "utf8" });
}

const writer = randomUUID();
const reader = randomUUID();
const asWriter = clientFor(userToken(writer));
const asReader = clientFor(userToken(reader));
const anon = clientFor(null);

before(async () => {
  sql(`
    DROP TABLE IF EXISTS book_genres, genres, profiles, books, authors, events, readings, staff, prefs CASCADE;
    CREATE TABLE authors (id bigint PRIMARY KEY, name text NOT NULL, born date, meta jsonb);
    CREATE TABLE books (
      id bigint PRIMARY KEY, title text NOT NULL,
      author_id bigint REFERENCES authors (id), editor_id bigint REFERENCES authors (id),
      pages int, price numeric(8,2), tags text[], during int4range, summary tsvector,
      owner uuid DEFAULT auth.uid(), note text);
    CREATE TABLE genres (id bigint PRIMARY KEY, name text UNIQUE NOT NULL);
    CREATE TABLE book_genres (book_id bigint REFERENCES books (id), genre_id bigint REFERENCES genres (id), PRIMARY KEY (book_id, genre_id));
    CREATE TABLE profiles (author_id bigint PRIMARY KEY REFERENCES authors (id), bio text);
    CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind text NOT NULL DEFAULT 'info', level int NOT NULL DEFAULT 3, note text);
    INSERT INTO authors VALUES
      (1, 'Ursula', '1929-10-21', '{"country": "US", "awards": 7}'),
      (2, 'Stanislaw', '1921-09-12', '{"country": "PL"}'),
      (3, 'Octavia', NULL, NULL);
    INSERT INTO books (id, title, author_id, editor_id, pages, price, tags, during, summary, note) VALUES
      (1, 'The Dispossessed', 1, 2, 387, 9.99, '{scifi,politics}', '[1970,1975)', to_tsvector('english', 'an ambiguous utopia on two worlds'), 'classic'),
      (2, 'A Wizard of Earthsea', 1, NULL, 183, 7.50, '{fantasy}', '[1966,1969)', to_tsvector('english', 'a young wizard and his shadow'), NULL),
      (3, 'Solaris', 2, 1, 204, 8.25, '{scifi}', '[1959,1961)', to_tsvector('english', 'a living ocean on a distant planet'), NULL),
      (4, 'Kindred', 3, NULL, 264, 10.00, '{scifi,history}', '[1976,1979)', to_tsvector('english', 'time travel to a plantation'), 'classic');
    INSERT INTO genres VALUES (1, 'science fiction'), (2, 'fantasy'), (3, 'history');
    INSERT INTO book_genres VALUES (1, 1), (2, 2), (3, 1), (4, 1), (4, 3);
    INSERT INTO profiles VALUES (1, 'Wrote Earthsea');
    CREATE OR REPLACE FUNCTION books_by(author bigint) RETURNS SETOF books LANGUAGE sql STABLE AS $$ SELECT * FROM books WHERE author_id = author $$;
    CREATE OR REPLACE FUNCTION add_numbers(a int, b int DEFAULT 1) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$;
    CREATE OR REPLACE FUNCTION log_event(kind text) RETURNS void LANGUAGE sql AS $$ INSERT INTO events (kind) VALUES (kind) $$;
    CREATE OR REPLACE FUNCTION count_items(jsonb) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT jsonb_array_length($1 -> 'items') $$;
    CREATE OR REPLACE FUNCTION pick(a int) RETURNS text LANGUAGE sql AS $$ SELECT 'int' $$;
    CREATE OR REPLACE FUNCTION pick(a text) RETURNS text LANGUAGE sql AS $$ SELECT 'text' $$;
    -- Functions that answer with an error of their choosing.
    CREATE OR REPLACE FUNCTION pay_first() RETURNS void LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'Pay first' USING ERRCODE = 'PT402', DETAIL = 'Quota exceeded', HINT = 'Upgrade your plan'; END $$;
    CREATE OR REPLACE FUNCTION teapot() RETURNS void LANGUAGE plpgsql AS $$
      BEGIN RAISE SQLSTATE 'PGRST' USING
        message = '{"code": "123", "message": "Short and stout", "details": "Tip me over", "hint": "Pour"}',
        detail = '{"status": 418, "status_text": "Short and Stout", "headers": {"X-Powered-By": "Galley"}}'; END $$;
    CREATE OR REPLACE FUNCTION own_code() RETURNS void LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'not enough stock' USING ERRCODE = 'U0001'; END $$;
    CREATE OR REPLACE FUNCTION bad_raise() RETURNS void LANGUAGE plpgsql AS $$
      BEGIN RAISE SQLSTATE 'PGRST' USING message = 'not json'; END $$;
    -- Functions over a row: a computed field, and computed relationships to-many, to-one
    -- (ROWS 1) and to-one by returning a single row; over a view and a partitioned table too.
    CREATE FUNCTION label(books) RETURNS text LANGUAGE sql STABLE AS $$ SELECT $1.title || ' (' || $1.pages || ')' $$;
    CREATE FUNCTION written(authors) RETURNS SETOF books LANGUAGE sql STABLE AS $$ SELECT * FROM books WHERE author_id = $1.id $$;
    CREATE FUNCTION writer(books) RETURNS SETOF authors ROWS 1 LANGUAGE sql STABLE AS $$ SELECT * FROM authors WHERE id = $1.author_id $$;
    CREATE FUNCTION first_book(authors) RETURNS books LANGUAGE sql STABLE AS $$ SELECT * FROM books WHERE author_id = $1.id ORDER BY id LIMIT 1 $$;
    CREATE VIEW long_books AS SELECT id, title, author_id, pages FROM books WHERE pages > 250;
    CREATE FUNCTION author_of(long_books) RETURNS SETOF authors ROWS 1 LANGUAGE sql STABLE AS $$ SELECT * FROM authors WHERE id = $1.author_id $$;
    CREATE FUNCTION shout(long_books) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper($1.title) $$;
    CREATE TABLE readings (id int, taken date, value int, PRIMARY KEY (id, taken)) PARTITION BY RANGE (taken);
    CREATE TABLE readings_2026 PARTITION OF readings FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    INSERT INTO readings VALUES (1, '2026-03-01', 20), (2, '2026-04-01', 31);
    CREATE FUNCTION fahrenheit(readings) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$ SELECT $1.value * 9 / 5.0 + 32 $$;
    GRANT SELECT ON long_books, readings TO anon, authenticated;
    -- Views whose columns show the tables' keys, under other names, and a table that
    -- references itself.
    CREATE VIEW book_list AS SELECT id, title, author_id AS writer_id FROM books;
    CREATE VIEW author_list AS SELECT id AS author_key, name FROM authors WHERE id < 3;
    CREATE TABLE staff (id int PRIMARY KEY, name text NOT NULL, manager_id int REFERENCES staff (id));
    INSERT INTO staff VALUES (1, 'Grace', NULL), (2, 'Ada', 1), (3, 'Alan', 1), (4, 'Edsger', 2);
    GRANT SELECT ON book_list, author_list, staff TO anon, authenticated;
    CREATE POLICY open_read ON staff FOR SELECT USING (true);
    CREATE TABLE prefs (key text PRIMARY KEY, value text NOT NULL DEFAULT 'on', level int NOT NULL DEFAULT 3);
    INSERT INTO prefs VALUES ('theme', 'dark', 9);
    GRANT SELECT, INSERT, UPDATE ON prefs TO authenticated;
    CREATE POLICY open_all ON prefs FOR ALL TO authenticated USING (true) WITH CHECK (true);
    CREATE POLICY open_read ON readings FOR SELECT USING (true);
    GRANT SELECT ON authors, books, genres, book_genres, profiles TO anon, authenticated;
    GRANT INSERT, UPDATE, DELETE ON books, events TO authenticated;
    GRANT SELECT ON events TO authenticated;
    ALTER TABLE books ENABLE ROW LEVEL SECURITY;
    CREATE POLICY books_read ON books FOR SELECT USING (true);
    CREATE POLICY books_write ON books FOR INSERT WITH CHECK (owner = auth.uid());
    CREATE POLICY books_change ON books FOR UPDATE USING (owner = auth.uid());
    CREATE POLICY books_remove ON books FOR DELETE USING (owner = auth.uid());
    -- Made with psql, these tables are first-class in Galley: row-level security is on and
    -- forced, so the open ones say so with a policy, as a Supabase project would.
    CREATE POLICY open_read ON authors FOR SELECT USING (true);
    CREATE POLICY open_read ON genres FOR SELECT USING (true);
    CREATE POLICY open_read ON book_genres FOR SELECT USING (true);
    CREATE POLICY open_read ON profiles FOR SELECT USING (true);
    CREATE POLICY open_all ON events FOR ALL TO authenticated USING (true) WITH CHECK (true);
  `);
  // The catalog reloads on DDL; wait until the last table is served.
  for (let i = 0; i < 100; i++) {
    const { error } = await anon.from("profiles").select("bio").limit(1);
    const rpc = await anon.rpc("add_numbers", { a: 1 });
    const computed = await anon.from("readings").select("fahrenheit").limit(1);
    const staff = await anon.from("staff").select("name").limit(1);
    if (!error && !rpc.error && !computed.error && !staff.error) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("the tables made with psql were not served");
});

test("to-one, to-many, one-to-one and many-to-many embeds", async () => {
  const books = await anon.from("books").select("title, author:authors!author_id(name), genres(name)").order("id").limit(2);
  assert.equal(books.error, null);
  assert.deepEqual(books.data, [
    { title: "The Dispossessed", author: { name: "Ursula" }, genres: [{ name: "science fiction" }] },
    { title: "A Wizard of Earthsea", author: { name: "Ursula" }, genres: [{ name: "fantasy" }] },
  ]);
  const authors = await anon.from("authors").select("name, profiles(bio), books!author_id(title)").order("id");
  assert.deepEqual(authors.data[0], { name: "Ursula", profiles: { bio: "Wrote Earthsea" }, books: [{ title: "The Dispossessed" }, { title: "A Wizard of Earthsea" }] });
  assert.deepEqual(authors.data[2], { name: "Octavia", profiles: null, books: [{ title: "Kindred" }] });
  // By the foreign key column, and by the constraint's name.
  const byColumn = await anon.from("books").select("title, editor_id(name)").eq("id", 3).single();
  assert.deepEqual(byColumn.data, { title: "Solaris", editor_id: { name: "Ursula" } });
  const byConstraint = await anon.from("books").select("title, books_editor_id_fkey(name)").eq("id", 1).single();
  assert.deepEqual(byConstraint.data, { title: "The Dispossessed", books_editor_id_fkey: { name: "Stanislaw" } });
});

test("an ambiguous embed answers 300 with the candidates", async () => {
  const { error, status, statusText } = await anon.from("books").select("title, authors(name)");
  assert.equal(status, 300);
  assert.equal(statusText, "Multiple Choices");
  assert.deepEqual(error, {
    code: "PGRST201",
    details: [
      { cardinality: "many-to-one", embedding: "books with authors", relationship: "books_author_id_fkey using books(author_id) and authors(id)" },
      { cardinality: "many-to-one", embedding: "books with authors", relationship: "books_editor_id_fkey using books(editor_id) and authors(id)" },
    ],
    hint: "Try changing 'authors' to one of the following: 'authors!books_author_id_fkey', 'authors!books_editor_id_fkey'. Find the desired relationship in the 'details' key.",
    message: "Could not embed because more than one relationship was found for 'books' and 'authors'",
  });
  const junctions = await anon.from("genres").select("name, books(title)").limit(1);
  assert.equal(junctions.error, null, JSON.stringify(junctions.error));
  const none = await anon.from("books").select("title, xyz(kind)");
  assert.equal(none.status, 400);
  assert.deepEqual(none.error, {
    code: "PGRST200",
    details: "Searched for a foreign key relationship between 'books' and 'xyz' in the schema 'public', but no matches were found.",
    hint: null,
    message: "Could not find a relationship between 'books' and 'xyz' in the schema cache",
  });
  const badHint = await anon.from("books").select("title, authors!nope(name)");
  assert.equal(
    badHint.error.details,
    "Searched for a foreign key relationship between 'books' and 'authors' using the hint 'nope' in the schema 'public', but no matches were found.",
  );
});

test("embeds through views, a self-reference, and one table twice", async () => {
  // A view shows books' key as writer_id: it embeds authors, authors embed it, and two
  // views embed each other.
  const viewToTable = await anon.from("book_list").select("title, authors(name)").eq("id", 3).single();
  assert.equal(viewToTable.error, null, JSON.stringify(viewToTable.error));
  assert.deepEqual(viewToTable.data, { title: "Solaris", authors: { name: "Stanislaw" } });
  const tableToView = await anon.from("authors").select("name, book_list(title)").eq("id", 2).single();
  assert.deepEqual(tableToView.data, { name: "Stanislaw", book_list: [{ title: "Solaris" }] });
  const viewToView = await anon.from("book_list").select("title, author_list(name)").order("id");
  assert.deepEqual(viewToView.data.map((b) => b.author_list), [{ name: "Ursula" }, { name: "Ursula" }, { name: "Stanislaw" }, null]);
  const reverse = await anon.from("author_list").select("name, book_list(title)").eq("author_key", 1).single();
  assert.deepEqual(reverse.data, { name: "Ursula", book_list: [{ title: "The Dispossessed" }, { title: "A Wizard of Earthsea" }] });
  // Self-reference: the table's name is the children, the key's column the parent, and a
  // hint by the column picks the children too.
  const staff = await anon.from("staff").select("name, manager_id(name), staff(name)").order("id");
  assert.equal(staff.error, null, JSON.stringify(staff.error));
  assert.deepEqual(staff.data, [
    { name: "Grace", manager_id: null, staff: [{ name: "Ada" }, { name: "Alan" }] },
    { name: "Ada", manager_id: { name: "Grace" }, staff: [{ name: "Edsger" }] },
    { name: "Alan", manager_id: { name: "Grace" }, staff: [] },
    { name: "Edsger", manager_id: { name: "Ada" }, staff: [] },
  ]);
  const hinted = await anon.from("staff").select("name, reports:staff!manager_id(name), boss:manager_id(name)").eq("id", 2).single();
  assert.deepEqual(hinted.data, { name: "Ada", reports: [{ name: "Edsger" }], boss: { name: "Grace" } });
  // The same table twice, under two aliases.
  const twice = await anon.from("books").select("title, writer:authors!author_id(name), editor:authors!editor_id(name)").eq("id", 1).single();
  assert.deepEqual(twice.data, { title: "The Dispossessed", writer: { name: "Ursula" }, editor: { name: "Stanislaw" } });
  const filteredTwice = await anon
    .from("books")
    .select("title, writer:authors!author_id!inner(name), editor:authors!editor_id(name)")
    .eq("writer.name", "Stanislaw");
  assert.deepEqual(filteredTwice.data, [{ title: "Solaris", writer: { name: "Stanislaw" }, editor: { name: "Ursula" } }]);
});

test("inner embeds, embedded filters, order and limit, null filtering and spreads", async () => {
  const inner = await anon.from("books").select("title, genres!inner(name)").eq("genres.name", "history");
  assert.deepEqual(inner.data, [{ title: "Kindred", genres: [{ name: "history" }] }]);
  const outer = await anon.from("books").select("id, genres(name)").eq("genres.name", "history").order("id");
  assert.equal(outer.data.length, 4);
  assert.deepEqual(outer.data[0].genres, []);
  const paged = await anon
    .from("authors")
    .select("name, books!author_id(title)")
    .eq("id", 1)
    .order("title", { referencedTable: "books", ascending: false })
    .limit(1, { referencedTable: "books" })
    .single();
  assert.deepEqual(paged.data, { name: "Ursula", books: [{ title: "The Dispossessed" }] });
  const withProfile = await anon.from("authors").select("name, profiles()").not("profiles", "is", null);
  assert.deepEqual(withProfile.data, [{ name: "Ursula" }]);
  const withoutProfile = await anon.from("authors").select("name, profiles()").is("profiles", null).order("name");
  assert.deepEqual(withoutProfile.data, [{ name: "Octavia" }, { name: "Stanislaw" }]);
  const spread = await anon.from("books").select("title, ...authors!author_id(author_name:name)").eq("id", 3).single();
  assert.deepEqual(spread.data, { title: "Solaris", author_name: "Stanislaw" });
  const byAuthor = await anon.from("books").select("title, author:authors!author_id(name)").order("author(name)", { ascending: false }).order("id").limit(2);
  assert.deepEqual(byAuthor.data.map((b) => b.author.name), ["Ursula", "Ursula"]);
  const embeddedOr = await anon.from("authors").select("name, books!author_id(title)").or("pages.gt.300,title.eq.Kindred", { referencedTable: "books" }).order("id");
  assert.deepEqual(embeddedOr.data.map((a) => a.books.length), [1, 0, 1]);
});

test("every filter operator, negation, nested logic and quantifiers", async () => {
  const titles = async (query) => {
    const { data, error } = await query.order("id");
    assert.equal(error, null, JSON.stringify(error));
    return data.map((row) => row.title);
  };
  const books = () => anon.from("books").select("title");
  assert.deepEqual(await titles(books().neq("author_id", 1)), ["Solaris", "Kindred"]);
  assert.deepEqual(await titles(books().gt("pages", 264).lte("pages", 387)), ["The Dispossessed"]);
  assert.deepEqual(await titles(books().like("title", "%Wizard%")), ["A Wizard of Earthsea"]);
  assert.deepEqual(await titles(books().ilike("title", "solaris")), ["Solaris"]);
  assert.deepEqual(await titles(books().match({ author_id: 1, pages: 183 })), ["A Wizard of Earthsea"]);
  assert.deepEqual(await titles(books().regexMatch("title", "^[KS]")), ["Solaris", "Kindred"]);
  assert.deepEqual(await titles(books().regexIMatch("title", "^the")), ["The Dispossessed"]);
  assert.deepEqual(await titles(books().is("note", null)), ["A Wizard of Earthsea", "Solaris"]);
  assert.deepEqual(await titles(books().isDistinct("note", "classic")), ["A Wizard of Earthsea", "Solaris"]);
  assert.deepEqual(await titles(books().in("id", [2, 4])), ["A Wizard of Earthsea", "Kindred"]);
  assert.deepEqual(await titles(books().not("id", "in", "(2,4)")), ["The Dispossessed", "Solaris"]);
  assert.deepEqual(await titles(books().contains("tags", ["scifi", "history"])), ["Kindred"]);
  assert.deepEqual(await titles(books().containedBy("tags", ["scifi", "politics", "fantasy"])), ["The Dispossessed", "A Wizard of Earthsea", "Solaris"]);
  assert.deepEqual(await titles(books().overlaps("tags", ["fantasy", "history"])), ["A Wizard of Earthsea", "Kindred"]);
  assert.deepEqual(await titles(books().rangeLt("during", "[1970,1971)")), ["A Wizard of Earthsea", "Solaris"]);
  assert.deepEqual(await titles(books().rangeGt("during", "[1970,1971)")), ["Kindred"]);
  assert.deepEqual(await titles(books().rangeGte("during", "[1966,1967)")), ["The Dispossessed", "A Wizard of Earthsea", "Kindred"]);
  assert.deepEqual(await titles(books().rangeLte("during", "[1960,1961)")), ["Solaris"]);
  assert.deepEqual(await titles(books().rangeAdjacent("during", "[1975,1976)")), ["The Dispossessed", "Kindred"]);
  assert.deepEqual(await titles(books().textSearch("summary", "wizard & shadow", { config: "english" })), ["A Wizard of Earthsea"]);
  assert.deepEqual(await titles(books().textSearch("summary", "living ocean", { type: "plain", config: "english" })), ["Solaris"]);
  assert.deepEqual(await titles(books().textSearch("summary", "two worlds", { type: "phrase", config: "english" })), ["The Dispossessed"]);
  assert.deepEqual(await titles(books().textSearch("summary", "time -ocean", { type: "websearch", config: "english" })), ["Kindred"]);
  assert.deepEqual(await titles(books().likeAnyOf("title", ["%olaris", "Kin%"])), ["Solaris", "Kindred"]);
  assert.deepEqual(await titles(books().likeAllOf("title", ["%e%", "%s%"])), ["The Dispossessed", "A Wizard of Earthsea"]);
  assert.deepEqual(await titles(books().filter("pages", "gt(any)", "{300,250}")), ["The Dispossessed", "Kindred"]);
  assert.deepEqual(await titles(books().or("pages.lt.200,and(author_id.eq.2,note.not.is.null)")), ["A Wizard of Earthsea"]);
  assert.deepEqual(await titles(books().or("title.eq.Solaris,and(pages.gt.300,tags.cs.{politics})")), ["The Dispossessed", "Solaris"]);
  const json = await anon.from("authors").select("name, country:meta->>country, awards:meta->awards").eq("meta->>country", "US");
  assert.deepEqual(json.data, [{ name: "Ursula", country: "US", awards: 7 }]);
  const cast = await anon.from("books").select("pages::text, price").eq("id", 1).single();
  assert.deepEqual(cast.data, { pages: "387", price: 9.99 });
});

test("a malformed parameter is refused where and as PostgREST refuses it", async () => {
  const select = await anon.from("books").select("id,authors(name[])");
  assert.equal(select.status, 400);
  assert.deepEqual(select.error, {
    code: "PGRST100",
    details: 'unexpected \'[\' expecting letter, digit, "-", "->>", "->", "::", ".", ")", "," or end of input',
    hint: null,
    message: '"failed to parse select parameter (id,authors(name[]))" (line 1, column 16)',
  });
  const filter = await anon.from("books").select("id").filter("id", "noop", "0");
  assert.deepEqual(filter.error, {
    code: "PGRST100",
    details: 'unexpected "o" expecting "not" or operator (eq, gt, ...)',
    hint: null,
    message: '"failed to parse filter (noop.0)" (line 1, column 1)',
  });
  const tree = await anon.from("books").select("id").or("id.in.1,2,id.eq.3");
  assert.deepEqual(tree.error, {
    code: "PGRST100",
    details: 'unexpected "1" expecting "("',
    hint: null,
    message: '"failed to parse logic tree ((id.in.1,2,id.eq.3))" (line 1, column 10)',
  });
  const nested = await anon.from("books").select("id").or("id.eq.1,not.xor(id.eq.2,id.eq.3)");
  assert.equal(nested.error.details, "unexpected \"x\" expecting logic operator (and, or)");
  assert.equal(nested.error.message, '"failed to parse logic tree ((id.eq.1,not.xor(id.eq.2,id.eq.3)))" (line 1, column 16)');
});

test("ordering with nulls placement, ranges, counts and HEAD", async () => {
  const born = await anon.from("authors").select("name").order("born", { ascending: true, nullsFirst: true });
  assert.deepEqual(born.data.map((a) => a.name), ["Octavia", "Stanislaw", "Ursula"]);
  const last = await anon.from("authors").select("name").order("born", { ascending: false, nullsFirst: false });
  assert.deepEqual(last.data.map((a) => a.name), ["Ursula", "Stanislaw", "Octavia"]);
  const page = await anon.from("books").select("id", { count: "exact" }).order("id").range(1, 2);
  assert.equal(page.status, 206);
  assert.equal(page.statusText, "Partial Content");
  assert.equal(page.count, 4);
  assert.deepEqual(page.data, [{ id: 2 }, { id: 3 }]);
  const planned = await anon.from("books").select("id", { count: "planned" });
  assert.equal(planned.error, null);
  assert.ok(Number.isInteger(planned.count) && planned.count >= 0, `planned ${planned.count}`);
  const estimated = await anon.from("books").select("id", { count: "estimated" });
  assert.equal(estimated.count, 4);
  const head = await anon.from("books").select("*", { count: "exact", head: true }).eq("author_id", 1);
  assert.equal(head.status, 200);
  assert.equal(head.count, 2);
  assert.equal(head.data, null);
  const beyond = await anon.from("books").select("id", { count: "exact" }).range(10, 12);
  assert.equal(beyond.status, 416);
  assert.equal(beyond.error.code, "PGRST103");
});

test("single, maybeSingle, CSV and stripped nulls", async () => {
  const one = await anon.from("authors").select("name").eq("id", 2).single();
  assert.deepEqual(one.data, { name: "Stanislaw" });
  const none = await anon.from("authors").select("name").eq("id", 99).maybeSingle();
  assert.equal(none.data, null);
  assert.equal(none.error, null);
  const csv = await anon.from("authors").select("id,name,born").order("id").csv();
  assert.equal(csv.data, "id,name,born\n1,Ursula,1929-10-21\n2,Stanislaw,1921-09-12\n3,Octavia,");
  const stripped = await anon.from("authors").select("name, born").eq("id", 3).stripNulls();
  assert.deepEqual(stripped.data, [{ name: "Octavia" }]);
});

test("inserts with defaults, upserts, rollback and max-affected", async () => {
  const inserted = await asWriter
    .from("books")
    .insert([{ id: 10, title: "Dawn", pages: 248 }, { id: 11, title: "Ubik", note: "pkd" }], { defaultToNull: false })
    .select("id, title, pages, note, owner")
    .order("id");
  assert.equal(inserted.error, null, JSON.stringify(inserted.error));
  assert.equal(inserted.status, 201);
  assert.deepEqual(inserted.data.map((b) => [b.id, b.pages, b.note]), [[10, 248, null], [11, null, "pkd"]]);
  assert.ok(inserted.data.every((b) => b.owner === writer), "owner took its default, auth.uid()");

  const ignored = await asWriter.from("books").upsert({ id: 10, title: "Dawn (again)" }, { ignoreDuplicates: true }).select("title");
  assert.deepEqual(ignored.data, []);
  const merged = await asWriter.from("books").upsert({ id: 10, title: "Dawn: Xenogenesis" }).select("title");
  assert.deepEqual(merged.data, [{ title: "Dawn: Xenogenesis" }]);
  const onKey = await asWriter.from("books").upsert({ id: 11, title: "Ubik", note: null }, { onConflict: "id" }).select("title, note");
  assert.deepEqual(onKey.data, [{ title: "Ubik", note: null }]);
  // missing=default on a merging upsert: a column other rows give and this one leaves
  // out takes its default, on insert and on conflict alike, as PostgREST evaluates it.
  const defaulted = await asWriter
    .from("prefs")
    .upsert([{ key: "theme", value: "light" }, { key: "font", level: 1 }], { defaultToNull: false })
    .select("key, value, level")
    .order("key");
  assert.equal(defaulted.error, null, JSON.stringify(defaulted.error));
  assert.deepEqual(defaulted.data, [
    { key: "font", value: "on", level: 1 },
    { key: "theme", value: "light", level: 3 },
  ]);
  // Each row's missing keys take their defaults; the identity column is left to itself.
  const events = await asWriter
    .from("events")
    .insert([{ kind: "audit" }, { level: 1 }], { defaultToNull: false })
    .select("id, kind, level")
    .order("level");
  assert.equal(events.error, null, JSON.stringify(events.error));
  assert.deepEqual(events.data.map((e) => [e.kind, e.level]), [["info", 1], ["audit", 3]]);
  assert.ok(events.data.every((e) => Number.isInteger(e.id)));

  const rolledBack = await asWriter.from("books").update({ title: "never" }).eq("id", 11).select("title").rollback();
  assert.deepEqual(rolledBack.data, [{ title: "never" }]);
  const kept = await anon.from("books").select("title").eq("id", 11).single();
  assert.equal(kept.data.title, "Ubik");

  const tooMany = await asWriter.from("books").update({ note: "x" }).in("id", [10, 11]).maxAffected(1);
  assert.equal(tooMany.status, 400);
  assert.equal(tooMany.error.code, "PGRST124");
  const unchanged = await anon.from("books").select("note").eq("id", 10).single();
  assert.equal(unchanged.data.note, null);

  const foreign = await asReader.from("books").update({ title: "mine now" }).eq("id", 10).select();
  assert.deepEqual(foreign.data, [], "row-level security hides another user's rows");
  const forged = await asReader.from("books").insert({ id: 12, title: "forged", owner: writer });
  assert.equal(forged.status, 403);
  assert.equal(forged.error.code, "42501");
  const removed = await asWriter.from("books").delete({ count: "exact" }).in("id", [10, 11]);
  assert.equal(removed.count, 2);
});

test("PUT, headers-only and OPTIONS over plain HTTP", async () => {
  const headers = { apikey: anonKey, authorization: `Bearer ${userToken(writer)}`, "content-type": "application/json" };
  const put = await fetch(`${url}/rest/v1/books?id=eq.20`, {
    method: "PUT",
    headers: { ...headers, prefer: "return=representation" },
    body: JSON.stringify({ id: 20, title: "Parable of the Sower", owner: writer }),
  });
  assert.equal(put.status, 201);
  assert.equal(put.headers.get("content-profile"), "public");
  assert.deepEqual((await put.json())[0].title, "Parable of the Sower");
  const again = await fetch(`${url}/rest/v1/books?id=eq.20`, { method: "PUT", headers, body: JSON.stringify({ id: 20, title: "Parable", owner: writer }) });
  assert.equal(again.status, 204);
  const mismatch = await fetch(`${url}/rest/v1/books?id=eq.20`, { method: "PUT", headers, body: JSON.stringify({ id: 21, title: "x" }) });
  assert.equal(mismatch.status, 400);
  assert.equal((await mismatch.json()).code, "PGRST115");
  const located = await fetch(`${url}/rest/v1/books`, {
    method: "POST",
    headers: { ...headers, prefer: "return=headers-only" },
    body: JSON.stringify({ id: 21, title: "Wild Seed" }),
  });
  assert.equal(located.status, 201);
  assert.equal(located.headers.get("location"), "/books?id=eq.21");
  const options = await fetch(`${url}/rest/v1/books`, { method: "OPTIONS" });
  assert.equal(options.status, 200);
  assert.match(options.headers.get("allow"), /PUT/);
  await asWriter.from("books").delete().in("id", [20, 21]);
});

test("functions by POST, GET and HEAD, with filters on their rows", async () => {
  const sum = await anon.rpc("add_numbers", { a: 2, b: 3 });
  assert.equal(sum.data, 5);
  const defaulted = await anon.rpc("add_numbers", { a: 2 }, { get: true });
  assert.equal(defaulted.data, 3);
  const rows = await anon.rpc("books_by", { author: 1 }).select("title").gt("pages", 200);
  assert.deepEqual(rows.data, [{ title: "The Dispossessed" }]);
  const embedded = await anon.rpc("books_by", { author: 2 }, { get: true }).select("title, genres(name)");
  assert.deepEqual(embedded.data, [{ title: "Solaris", genres: [{ name: "science fiction" }] }]);
  const counted = await anon.rpc("books_by", { author: 1 }, { head: true, count: "exact" });
  assert.equal(counted.count, 2);
  const logged = await asWriter.rpc("log_event", { kind: "audit" });
  assert.equal(logged.error, null);
  assert.equal(logged.status, 204);
  const readOnly = await asWriter.rpc("log_event", { kind: "sneaky" }, { get: true });
  assert.equal(readOnly.status, 405);
  const missing = await anon.rpc("pg_sleep", { seconds: 1 });
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.error, {
    code: "PGRST202",
    details:
      "Searched for the function public.pg_sleep with parameter seconds or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
    hint: null,
    message: "Could not find the function public.pg_sleep(seconds) in the schema cache",
  });
  // A single unnamed jsonb parameter takes the whole body.
  const counted2 = await anon.rpc("count_items", { items: [1, 2, 3], note: "any shape" });
  assert.equal(counted2.error, null, JSON.stringify(counted2.error));
  assert.equal(counted2.data, 3);
  // Overloads the argument names cannot tell apart: 300 PGRST203, as PostgREST says it.
  const ambiguous = await anon.rpc("pick", { a: 1 });
  assert.equal(ambiguous.status, 300);
  assert.deepEqual(ambiguous.error, {
    code: "PGRST203",
    details: null,
    hint: "Try renaming the parameters or the function itself in the database so function overloading can be resolved",
    message: "Could not choose the best candidate function between: public.pick(a => int4), public.pick(a => text)",
  });
});

test("functions over a row are computed fields and computed relationships", async () => {
  // A computed field: selected by name (never part of *), filtered and ordered by.
  const labelled = await anon.from("books").select("id, label").lt("label", "M").order("label", { ascending: false });
  assert.equal(labelled.error, null, JSON.stringify(labelled.error));
  assert.deepEqual(labelled.data, [
    { id: 4, label: "Kindred (264)" },
    { id: 2, label: "A Wizard of Earthsea (183)" },
  ]);
  const star = await anon.from("books").select("*").eq("id", 1).single();
  assert.equal(star.data.label, undefined);
  // To-many, with its own filter, order and limit; to-one by ROWS 1 and by a single row.
  const authors = await anon
    .from("authors")
    .select("name, titles:written(title), first_book(title), writer_count:written(count)")
    .gt("titles.pages", 200)
    .order("title", { referencedTable: "titles", ascending: false })
    .order("id");
  assert.equal(authors.error, null, JSON.stringify(authors.error));
  assert.deepEqual(authors.data, [
    { name: "Ursula", titles: [{ title: "The Dispossessed" }], first_book: { title: "The Dispossessed" }, writer_count: [{ count: 2 }] },
    { name: "Stanislaw", titles: [{ title: "Solaris" }], first_book: { title: "Solaris" }, writer_count: [{ count: 1 }] },
    { name: "Octavia", titles: [{ title: "Kindred" }], first_book: { title: "Kindred" }, writer_count: [{ count: 1 }] },
  ]);
  const books = await anon.from("books").select("title, writer(name)").order("writer(name)").order("id").limit(2);
  assert.equal(books.error, null, JSON.stringify(books.error));
  assert.deepEqual(books.data, [
    { title: "Kindred", writer: { name: "Octavia" } },
    { title: "Solaris", writer: { name: "Stanislaw" } },
  ]);
  // !inner drops the parents with no rows; a spread lifts a to-one's columns.
  const inner = await anon.from("authors").select("name, written!inner(title)").eq("written.title", "Solaris");
  assert.deepEqual(inner.data, [{ name: "Stanislaw", written: [{ title: "Solaris" }] }]);
  const spread = await anon.from("books").select("title, ...writer(author:name)").eq("id", 4).single();
  assert.deepEqual(spread.data, { title: "Kindred", author: "Octavia" });
  // On a view and on a partitioned table.
  const view = await anon.from("long_books").select("shout, author_of(name)").order("id");
  assert.equal(view.error, null, JSON.stringify(view.error));
  assert.deepEqual(view.data, [
    { shout: "THE DISPOSSESSED", author_of: { name: "Ursula" } },
    { shout: "KINDRED", author_of: { name: "Octavia" } },
  ]);
  const partitioned = await anon.from("readings").select("id, fahrenheit").gte("fahrenheit", 80);
  assert.deepEqual(partitioned.data, [{ id: 2, fahrenheit: 87.8 }]);
  // In a write's representation, and in the rows of a function.
  const inserted = await asWriter.from("books").insert({ id: 30, title: "Parable", author_id: 3, pages: 345 }).select("label, writer(name)").single();
  assert.equal(inserted.error, null, JSON.stringify(inserted.error));
  assert.deepEqual(inserted.data, { label: "Parable (345)", writer: { name: "Octavia" } });
  const updated = await asWriter.from("books").update({ pages: 346 }).eq("label", "Parable (345)").select("label");
  assert.deepEqual(updated.data, [{ label: "Parable (346)" }]);
  await asWriter.from("books").delete().eq("id", 30);
  const viaRpc = await anon.rpc("books_by", { author: 2 }).select("label, writer(name)");
  assert.deepEqual(viaRpc.data, [{ label: "Solaris (204)", writer: { name: "Stanislaw" } }]);
  // A computed field is not a column to write.
  const written = await asWriter.from("books").insert({ id: 31, title: "x", label: "no" });
  assert.equal(written.status, 400);
  assert.equal(written.error.code, "PGRST204");
});

test("explain answers the statement's plan (this server sets rest.plan_enabled)", async () => {
  const text = await anon.from("books").select("title").eq("id", 1).explain();
  assert.equal(text.error, null, JSON.stringify(text.error));
  assert.equal(typeof text.data, "string");
  assert.match(text.data, /Scan .*on books/);
  const json = await anon.from("books").select("title, author:authors!author_id(name)").explain({ format: "json", analyze: true, verbose: true });
  assert.equal(json.error, null, JSON.stringify(json.error));
  const plan = json.data[0];
  assert.ok(plan.Plan && "Actual Rows" in plan.Plan && Array.isArray(plan.Plan.Output), JSON.stringify(plan));
  assert.ok("Execution Time" in plan);
  // ANALYZE of a write runs it, and keeps nothing.
  const write = await asWriter.from("books").insert({ id: 40, title: "Planned", author_id: 1 }).select("id").explain({ analyze: true, format: "json" });
  assert.equal(write.error, null, JSON.stringify(write.error));
  assert.equal(write.data[0].Plan["Node Type"], "Aggregate");
  const kept = await anon.from("books").select("id").eq("id", 40);
  assert.deepEqual(kept.data, []);
  const rpc = await anon.rpc("books_by", { author: 1 }).explain({ format: "json" });
  assert.ok(rpc.data[0].Plan, JSON.stringify(rpc.data));
  const raw = await fetch(`${url}/rest/v1/books?select=id`, {
    headers: { apikey: anonKey, accept: 'application/vnd.pgrst.plan+json; for="text/csv"; options=buffers|settings' },
  });
  assert.equal(raw.status, 200);
  assert.equal(raw.headers.get("content-type"), 'application/vnd.pgrst.plan+json; for="text/csv"; options=settings|buffers; charset=utf-8');
  const unknown = await fetch(`${url}/rest/v1/books?select=id`, {
    headers: { apikey: anonKey, accept: "application/vnd.pgrst.plan+json; options=drop" },
  });
  assert.equal(unknown.status, 406);
});

test("geojson answers a FeatureCollection once PostGIS is installed", async () => {
  sql(`
    CREATE EXTENSION IF NOT EXISTS postgis;
    DROP TABLE IF EXISTS landmarks;
    CREATE TABLE landmarks (id int PRIMARY KEY, name text, spot geometry(Point, 4326));
    INSERT INTO landmarks VALUES (1, 'lighthouse', 'SRID=4326;POINT(-5.7 50.07)');
    GRANT SELECT ON landmarks TO anon;
    CREATE POLICY open_read ON landmarks FOR SELECT USING (true);
  `);
  let answer;
  for (let i = 0; i < 100; i++) {
    answer = await anon.from("landmarks").select("name, spot").geojson();
    if (!answer.error) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(answer.error, null, JSON.stringify(answer.error));
  assert.deepEqual(answer.data, {
    type: "FeatureCollection",
    features: [{ type: "Feature", geometry: { type: "Point", coordinates: [-5.7, 50.07] }, properties: { name: "lighthouse" } }],
  });
});

test("functions choose their errors' status, body and headers as in PostgREST", async () => {
  const paid = await anon.rpc("pay_first");
  assert.equal(paid.status, 402);
  // A PTnnn code's message is the status line's reason phrase, as in PostgREST.
  assert.equal(paid.statusText, "Pay first");
  assert.deepEqual(paid.error, { code: "PT402", details: "Quota exceeded", hint: "Upgrade your plan", message: "Pay first" });
  const own = await anon.rpc("own_code");
  assert.equal(own.status, 400);
  assert.deepEqual(own.error, { code: "U0001", details: null, hint: null, message: "not enough stock" });
  const teapot = await fetch(`${url}/rest/v1/rpc/teapot`, { method: "POST", headers: { apikey: anonKey, "content-type": "application/json" }, body: "{}" });
  assert.equal(teapot.status, 418);
  assert.equal(teapot.statusText, "Short and Stout");
  assert.equal(teapot.headers.get("x-powered-by"), "Galley");
  assert.deepEqual(await teapot.json(), { code: "123", details: "Tip me over", hint: "Pour", message: "Short and stout" });
  const bad = await anon.rpc("bad_raise");
  assert.equal(bad.status, 500);
  assert.deepEqual(bad.error, {
    code: "PGRST121",
    details: "Invalid JSON value for MESSAGE: 'not json'",
    hint: "MESSAGE must be a JSON object with obligatory keys: 'code', 'message' and optional keys: 'details', 'hint'.",
    message: "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error",
  });
});

test("aggregates group by the other columns", async () => {
  const perAuthor = await anon.from("books").select("author_id, count(), pages.sum(), price.max()").order("author_id");
  assert.equal(perAuthor.error, null, JSON.stringify(perAuthor.error));
  assert.deepEqual(perAuthor.data, [
    { author_id: 1, count: 2, sum: 570, max: 9.99 },
    { author_id: 2, count: 1, sum: 204, max: 8.25 },
    { author_id: 3, count: 1, sum: 264, max: 10 },
  ]);
  const total = await anon.from("books").select("total:pages.sum(), books:count()");
  assert.deepEqual(total.data, [{ total: 1038, books: 4 }]);
  const embedded = await anon.from("authors").select("name, books!author_id(count)").eq("id", 1).single();
  assert.deepEqual(embedded.data, { name: "Ursula", books: [{ count: 2 }] });
});

test("profiles, the OpenAPI document and the schema cache", async () => {
  const publicSchema = await anon.schema("public").from("genres").select("name").order("id").limit(1);
  assert.deepEqual(publicSchema.data, [{ name: "science fiction" }]);
  // This server lists rest.schemas = ["public", "api"]; Galley's own are never served.
  const hidden = await anon.schema("auth").from("users").select("*");
  assert.equal(hidden.status, 406);
  assert.deepEqual(hidden.error, {
    code: "PGRST106",
    details: null,
    hint: "Only the following schemas are exposed: public, api",
    message: "Invalid schema: auth",
  });
  sql(`
    DROP SCHEMA IF EXISTS api CASCADE;
    CREATE SCHEMA api;
    GRANT USAGE ON SCHEMA api TO anon, authenticated;
    -- The same table name as public's, to show each request reads its own schema.
    CREATE TABLE api.authors (id bigint PRIMARY KEY, handle text NOT NULL);
    CREATE TABLE api.posts (id bigint PRIMARY KEY, author_id bigint REFERENCES api.authors (id), body text);
    INSERT INTO api.authors VALUES (1, '@ursula');
    INSERT INTO api.posts VALUES (1, 1, 'hello');
    CREATE FUNCTION api.shout(words text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper(words) $$;
    CREATE FUNCTION api.posts_of(api.authors) RETURNS SETOF api.posts LANGUAGE sql STABLE AS $$ SELECT * FROM api.posts WHERE author_id = $1.id $$;
    GRANT SELECT ON ALL TABLES IN SCHEMA api TO anon, authenticated;
    GRANT INSERT, DELETE ON api.posts TO authenticated;
  `);
  const api = anon.schema("api");
  let served;
  for (let i = 0; i < 100; i++) {
    served = await api.from("authors").select("handle, posts(body), posts_of(id)");
    if (!served.error) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(served.error, null, JSON.stringify(served.error));
  assert.deepEqual(served.data, [{ handle: "@ursula", posts: [{ body: "hello" }], posts_of: [{ id: 1 }] }]);
  assert.equal(served.status, 200);
  const shouted = await api.rpc("shout", { words: "hi" });
  assert.equal(shouted.data, "HI");
  const inPublic = await anon.rpc("shout", { words: "hi" });
  assert.equal(inPublic.status, 404);
  assert.equal(inPublic.error.message, "Could not find the function public.shout(words) in the schema cache");
  const noTable = await api.from("books").select("*");
  assert.deepEqual(noTable.error, {
    code: "PGRST205",
    details: null,
    hint: null,
    message: "Could not find the table 'api.books' in the schema cache",
  });
  // Writes choose their schema by Content-Profile, which supabase-js sends.
  const inserted = await asWriter.schema("api").from("posts").insert({ id: 2, author_id: 1, body: "again" }).select("body, authors(handle)").single();
  assert.equal(inserted.error, null, JSON.stringify(inserted.error));
  assert.deepEqual(inserted.data, { body: "again", authors: { handle: "@ursula" } });
  const removed = await asWriter.schema("api").from("posts").delete().eq("id", 2).select("id");
  assert.deepEqual(removed.data, [{ id: 2 }]);
  const raw = await fetch(`${url}/rest/v1/authors?select=handle`, { headers: { apikey: anonKey, "accept-profile": "api" } });
  assert.equal(raw.headers.get("content-profile"), "api");
  const apiDoc = await (await fetch(`${url}/rest/v1/`, { headers: { apikey: anonKey, "accept-profile": "api" } })).json();
  assert.deepEqual(Object.keys(apiDoc.paths).sort(), ["/authors", "/posts", "/rpc/posts_of", "/rpc/shout"]);
  const doc = await (await fetch(`${url}/rest/v1/`, { headers: { apikey: anonKey } })).json();
  assert.equal(doc.openapi, "3.1.0");
  assert.ok(doc.paths["/books"] && doc.paths["/rpc/books_by"], Object.keys(doc.paths).join(","));
  assert.equal(doc.components.schemas.books.properties.pages.type, "integer");
  assert.equal(doc.paths["/events"], undefined, "anon holds no privilege on events");
  sql("ALTER TABLE genres ADD COLUMN slug text");
  for (let i = 0; i < 100; i++) {
    const { error } = await anon.from("genres").select("slug").limit(1);
    if (!error) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail("a column added with psql was not served");
});
