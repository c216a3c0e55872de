import { randomBytes, randomFillSync } from 'node:crypto'

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'

/**
 * Makes job ids: 26 characters, sortable by creation time (a ULID-like layout in lower-case
 * Crockford base32). Time-ordered ids keep database indexes compact; the random part makes ids
 * from many processes collide with negligible probability.
 */
export function createIdGenerator(): () => string {
	let lastMs = -1
	let random = new Uint8Array(10)
	/** The 10 time characters of lastMs: the same for every id of one millisecond. */
	let timePart = ''
	return function nextId(): string {
		const ms = Date.now()
		if (ms === lastMs) {
			// Same millisecond: count up so ids stay ordered within this process.
			for (let i = random.length - 1; i >= 0; i--) {
				random[i] = (random[i]! + 1) & 0xff
				if (random[i] !== 0) break
			}
		} else {
			lastMs = ms
			random = new Uint8Array(randomBytes(10))
			random[0]! &= 0x7f // leave room to count up without wrapping
			timePart = ''
			let t = ms
			for (let i = 0; i < 10; i++) {
				timePart = ALPHABET[t % 32]! + timePart
				t = Math.floor(t / 32)
			}
		}
		let out = timePart
		// 80 random bits as 16 base32 characters, 5 bits at a time.
		let acc = 0
		let bits = 0
		for (const byte of random) {
			acc = (acc << 8) | byte
			bits += 8
			while (bits >= 5) {
				bits -= 5
				out += ALPHABET[(acc >> bits) & 31]
			}
			acc &= (1 << bits) - 1
		}
		return out
	}
}

const TOKEN_BYTES = 12
const POOL_BYTES = TOKEN_BYTES * 256
let pool: Buffer | null = null
let poolAt = POOL_BYTES

/**
 * A random token for a lease: unguessable, unique per claim. 96 random bits, taken from a pool
 * filled 256 tokens at a time (a call into the system's CSPRNG per claim cost more than the
 * claim itself on the memory storage).
 */
export function createLeaseToken(): string {
	if (poolAt === POOL_BYTES) {
		pool ??= Buffer.allocUnsafe(POOL_BYTES)
		randomFillSync(pool)
		poolAt = 0
	}
	const token = pool!.toString('base64url', poolAt, poolAt + TOKEN_BYTES)
	poolAt += TOKEN_BYTES
	return token
}
