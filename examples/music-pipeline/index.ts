/**
 * Seed 004's upload pipeline, end to end on SQLite, with stand-in work (no network, no ffmpeg):
 * `processFile` runs `metadata` and `transcode` as child jobs in parallel, `metadata` fans out to
 * three lookups and extracts a colour palette in a worker thread, and every piece of work is a
 * durable step. Run it twice against the same file and nothing runs again.
 *
 *   npx tsx examples/music-pipeline/index.ts
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { createJob, createQueue, run, silentLogger, thread } from '../../src/index.js'
import { sqlite } from '../../src/storage/sqlite/index.js'

// Stand-ins for the outside world.
const songs = new Map<string, { title: string; artist: string; palette: string[] }>()
const notifications: string[] = []
const exec = async (command: string) => `output of ${command}`

const lookup = (source: string) =>
	createJob(
		{
			name: source,
			input: z.object({ id: z.string() }),
			output: z.object({ source: z.string(), title: z.string() }),
		},
		async ({ id }) => run(`${source}-fetch`, async () => ({ source, title: `Song ${id}` })),
	)
const spotify = lookup('spotify')
const lastFm = lookup('lastFm')
const audioDB = lookup('audioDB')

const musicBrainz = createJob(
	{
		name: 'musicBrainz',
		input: z.object({ fingerprint: z.string() }),
		output: z.object({ id: z.string() }),
		throttle: '1 per second',
	},
	async ({ fingerprint }) => {
		const data = await run('musicbrainz-fetch', async () => ({
			recordings: [{ id: `mb-${fingerprint.length}` }],
		}))
		return { id: data.recordings[0]!.id }
	},
)

const metadata = createJob(
	{
		name: 'metadata',
		input: z.object({ path: z.string() }),
		output: z.object({ title: z.string(), artist: z.string(), id: z.string(), palette: z.array(z.string()) }),
		concurrency: 10,
	},
	async ({ path }) => {
		const fingerprint = await run('fpcalc', () => exec(`fpcalc ${path}`))
		const { id } = await musicBrainz.run({ fingerprint })
		const all = await Promise.all([spotify.run({ id }), lastFm.run({ id }), audioDB.run({ id })])
		const coverArt = await run('download-cover-art', async () => `/tmp/covers/${id}.jpg`)
		// Runs in a worker thread; self-contained: it uses only its input.
		const palette = await thread(
			'color-extractor',
			async ({ path }: { path: string }) => {
				let h = 0
				for (const c of path) h = (h * 31 + c.charCodeAt(0)) >>> 0
				return [0, 1, 2].map((i) => `#${((h >>> (i * 8)) & 0xffffff).toString(16).padStart(6, '0')}`)
			},
			{ path: coverArt },
		)
		return { title: all[0].title, artist: 'The Stand-ins', id, palette }
	},
)

const transcode = createJob(
	{
		name: 'transcode',
		input: z.object({ path: z.string() }),
		output: z.object({ path: z.string() }),
		concurrency: 2,
		timeout: '5m',
	},
	async ({ path }) => {
		const outputPath = path.replace(/\.mp3$/, '.ogg')
		await run('ffmpeg', () => exec(`ffmpeg -i ${path} -c:a libvorbis ${outputPath}`))
		return { path: outputPath }
	},
)

const processFile = createJob(
	{ name: 'processFile', input: z.object({ path: z.string() }) },
	async ({ path }) => {
		const [{ title, artist, id, palette }, { path: transcodedPath }] = await Promise.all([
			metadata.run({ path }),
			transcode.run({ path }),
		])
		await run({ name: 'store-metadata', concurrency: 1 }, async () => {
			songs.set(id, { title, artist, palette })
		})
		await run('notify-user', async () => {
			notifications.push(`${title} by ${artist} has been added to your library`)
		})
		return { id, transcodedPath }
	},
)

const dir = mkdtempSync(join(tmpdir(), 'spool-music-'))
const queue = createQueue({
	jobs: { processFile, transcode, metadata, musicBrainz, spotify, lastFm, audioDB },
	storage: sqlite({ path: join(dir, 'spool.db') }),
	logger: silentLogger,
	worker: { pollInterval: '50ms' },
})
try {
	const out = await queue.jobs.processFile.run({ path: 'song.mp3' })
	console.log('Job completed', out)
	const steps = await queue.getSteps((await queue.listJobs({ name: 'processFile' })).jobs[0]!.id)
	console.log('processFile steps:', steps.map((s) => s.stepId).join(', '))
	if (out.transcodedPath !== 'song.ogg' || songs.size !== 1 || notifications.length !== 1) {
		throw new Error(`unexpected result: ${JSON.stringify({ out, songs: [...songs], notifications })}`)
	}
	const song = songs.get(out.id)!
	if (song.palette.length !== 3 || !song.palette.every((c) => /^#[0-9a-f]{6}$/.test(c))) {
		throw new Error(`bad palette ${JSON.stringify(song.palette)}`)
	}
	console.log(notifications[0])
} finally {
	await queue.close()
	rmSync(dir, { recursive: true, force: true })
}
