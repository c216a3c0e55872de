/** Builds the dashboard UI into dist/ui, served by createDashboard. */
import { fileURLToPath } from 'node:url'
import preact from '@preact/preset-vite'
import { defineConfig } from 'vite'

export default defineConfig({
	root: fileURLToPath(new URL('.', import.meta.url)),
	base: './',
	plugins: [preact()],
	build: {
		outDir: fileURLToPath(new URL('../dist/ui', import.meta.url)),
		emptyOutDir: true,
		// No inline scripts: the dashboard's CSP allows scripts from its own origin only.
		modulePreload: { polyfill: false },
		assetsInlineLimit: 0,
		reportCompressedSize: false,
	},
})
