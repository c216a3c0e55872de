/**
 * Test helpers, shipped to users: a controllable clock, a storage that records instead of
 * running, and inline execution (`createQueue({ worker: { inline: true } })` runs each job in the
 * enqueuing call).
 */
export { createTestClock, type TestClock } from './clock.js'
export { type RecordedJob, type RecordingStorage, recordingStorage } from './recording.js'
