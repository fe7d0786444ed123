// Reads a read model and vector store built by Chronicle the way the CMS does: Drizzle ORM on
// better-sqlite3 with the seed's own table definitions (seed_schema.mjs), the schema Chronicle prints
// (`chronicle schema drizzle` → schema.mjs), and @lancedb/lancedb on the seed's table names.
// Usage: node read_chronicle.mjs <expected.json>   (run from a directory whose parent has node_modules)
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import Database from "better-sqlite3";
import { getTableColumns, getTableName, is } from "drizzle-orm";
import { drizzle } from "drizzle-orm/better-sqlite3";
import { SQLiteTable } from "drizzle-orm/sqlite-core";
import * as lancedb from "@lancedb/lancedb";

const expected = JSON.parse(readFileSync(process.argv[2], "utf8"));
const seed = await import(new URL("./seed_schema.mjs", import.meta.url));
const generated = await import(new URL("./schema.mjs", import.meta.url));

const sqlite = new Database(expected.sqlite, { readonly: true });
sqlite.pragma("busy_timeout = 5000");
const db = drizzle(sqlite);
const report = { tables: {}, generated: {}, vectors: {} };

function tablesOf(module) {
	return Object.values(module).filter((v) => is(v, SQLiteTable));
}

// Every row through Drizzle, compared with the raw row: timestamps are valid Dates of the stored
// seconds, JSON columns parse to what Chronicle stored.
function readAll(table, label) {
	const name = getTableName(table);
	const rows = db.select().from(table).all();
	const raw = sqlite.prepare(`SELECT * FROM "${name}"`).all();
	assert.equal(rows.length, expected.counts[name], `${label} ${name}: row count`);
	const byKey = new Map(raw.map((r) => [JSON.stringify(keyOf(name, r)), r]));
	for (const row of rows) {
		for (const [prop, column] of Object.entries(getTableColumns(table))) {
			const r = byKey.get(JSON.stringify(keyOfDrizzle(table, row)));
			assert.ok(r, `${label} ${name}: raw row for ${JSON.stringify(row)}`);
			const stored = r[column.name];
			const value = row[prop];
			if (column.columnType === "SQLiteTimestamp") {
				if (stored === null) { assert.equal(value, null); continue; }
				assert.ok(value instanceof Date && !Number.isNaN(value.getTime()), `${name}.${column.name} is a valid Date`);
				assert.equal(value.getTime(), stored * 1000, `${name}.${column.name}`);
			} else if (column.columnType === "SQLiteTextJson") {
				assert.deepEqual(value, stored === null ? null : JSON.parse(stored), `${name}.${column.name} JSON`);
			}
		}
	}
	return rows;
}

const keys = expected.keys;
function keyOf(name, raw) { return keys[name].map((k) => raw[k]); }
function keyOfDrizzle(table, row) {
	const name = getTableName(table);
	const cols = getTableColumns(table);
	return keys[name].map((k) => row[Object.entries(cols).find(([, c]) => c.name === k)[0]]);
}

for (const table of tablesOf(seed)) {
	const rows = readAll(table, "seed");
	report.tables[getTableName(table)] = rows.length;
}
for (const table of tablesOf(generated)) {
	const rows = readAll(table, "generated");
	report.generated[getTableName(table)] = rows.length;
}

// Event times: each named row's timestamps are exactly the times of the events that set them.
const seedTables = Object.fromEntries(tablesOf(seed).map((t) => [getTableName(t), t]));
for (const [name, rows] of Object.entries(expected.times)) {
	const all = db.select().from(seedTables[name]).all();
	for (const [id, fields] of Object.entries(rows)) {
		const row = all.find((r) => r.id === id);
		assert.ok(row, `${name} ${id} present`);
		for (const [prop, seconds] of Object.entries(fields)) {
			assert.equal(row[prop].getTime(), seconds * 1000, `${name}.${id}.${prop} = event time`);
		}
	}
}
// JSON written by events comes back as the objects the events carried.
for (const [name, rows] of Object.entries(expected.json)) {
	const all = db.select().from(seedTables[name]).all();
	for (const [id, fields] of Object.entries(rows)) {
		const row = all.find((r) => r.id === id);
		for (const [prop, value] of Object.entries(fields)) assert.deepEqual(row[prop], value, `${name}.${id}.${prop}`);
	}
}

// The seed's VectorIndexService: page_embeddings rows {id, pageId, content, vector}, nearestTo(vector).
const vdb = await lancedb.connect(expected.lancedb);
const names = await vdb.tableNames();
for (const name of ["page_embeddings", "section_embeddings", "image_embeddings"]) {
	assert.ok(names.includes(name), `LanceDB table ${name} exists (have ${names})`);
}
const pagesTable = await vdb.openTable("page_embeddings");
const schema = await pagesTable.schema();
const fields = schema.fields.map((f) => f.name);
for (const f of ["id", "pageId", "content", "vector"]) assert.ok(fields.includes(f), `page_embeddings.${f}`);
const vectorField = schema.fields.find((f) => f.name === "vector");
assert.equal(vectorField.type.listSize, expected.dimension, "vector dimension");
const viaSearch = await pagesTable.search(expected.query.vector).limit(3).toArray();
const viaNearest = await pagesTable.query().nearestTo(expected.query.vector).limit(3).toArray();
assert.equal(viaSearch[0].id, expected.query.id);
assert.equal(viaNearest[0].id, expected.query.id);
assert.equal(viaSearch[0].pageId, expected.query.id);
assert.equal(viaSearch[0].content, expected.query.content);
const sections = await (await vdb.openTable("section_embeddings")).query().toArray();
report.vectors = {
	page_embeddings: await pagesTable.countRows(),
	section_embeddings: sections.length,
	image_embeddings: await (await vdb.openTable("image_embeddings")).countRows(),
	sectionPages: Object.fromEntries(sections.map((r) => [r.id, r.pageId])),
	top: viaSearch.map((r) => r.id),
};
console.log(JSON.stringify(report));
