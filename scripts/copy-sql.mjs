// Copies the .sql files of the PostgreSQL storage next to its compiled modules, which read them at
// run time: src/storage/postgres/sql/*.sql -> dist/storage/postgres/sql/. Portable (no cp, no shell).
import { cpSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
cpSync(join(root, 'src/storage/postgres/sql'), join(root, 'dist/storage/postgres/sql'), {
	recursive: true,
	filter: (src) => !src.includes('.') || src.endsWith('.sql'),
})
