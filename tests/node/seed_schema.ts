// The CMS's tables exactly as its persistence layer writes them (../shared/seeds/001_bc5434b24b84d427.txt,
// `server/db/schema.ts`). Do not edit to fit Chronicle: Chronicle must fit these.
import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

export const pages = sqliteTable("pages", {
	id: text("id").primaryKey(),
	siteId: text("site_id").notNull(),
	environmentId: text("environment_id").notNull(),
	title: text("title").notNull(),
	slug: text("slug").notNull(),
	status: text("status").default("draft"),
	metadata: text("metadata", { mode: "json" }),
	createdAt: integer("created_at", { mode: "timestamp" }),
	updatedAt: integer("updated_at", { mode: "timestamp" }),
});

export const sectionDefinitions = sqliteTable("section_definitions", {
	id: text("id").primaryKey(),
	name: text("name").notNull(), // 'hero', 'features', etc.
	schema: text("schema", { mode: "json" }), // Zod schema
	defaultContent: text("default_content", { mode: "json" }),
});

export const sectionEntries = sqliteTable("section_entries", {
	id: text("id").primaryKey(),
	definitionId: text("definition_id").notNull(),
	content: text("content", { mode: "json" }), // Actual data
	pageId: text("page_id"), // Which page it's on
	order: integer("order"),
});

export const images = sqliteTable("images", {
	id: text("id").primaryKey(),
	filename: text("filename").notNull(),
	originalPath: text("original_path").notNull(),
	mimeType: text("mime_type").notNull(),
	size: integer("size").notNull(),
	width: integer("width"),
	height: integer("height"),
	hash: text("hash"), // SHA256 for dedup
	status: text("status").default("pending"), // pending/processing/completed/failed
	metadata: text("metadata", { mode: "json" }), // AI-generated
	createdAt: integer("created_at", { mode: "timestamp" }),
});

export const imageVariants = sqliteTable("image_variants", {
	id: text("id").primaryKey(),
	imageId: text("image_id").notNull(),
	width: integer("width").notNull(),
	format: text("format").notNull(), // webp, avif
	path: text("path").notNull(),
	size: integer("size").notNull(),
});

export const sessions = sqliteTable("sessions", {
	id: text("id").primaryKey(),
	title: text("title"),
	createdAt: integer("created_at", { mode: "timestamp" }),
	updatedAt: integer("updated_at", { mode: "timestamp" }),
});

export const messages = sqliteTable("messages", {
	id: text("id").primaryKey(),
	sessionId: text("session_id").notNull(),
	role: text("role").notNull(), // user/assistant/tool
	content: text("content", { mode: "json" }),
	createdAt: integer("created_at", { mode: "timestamp" }),
});
