/**
 * The conformance suite: the same cases against every storage. A storage's test file calls
 * `runConformance('sqlite', factory)`; a storage is not done until all of it passes.
 */
import { describe } from 'vitest'
import { durableCases } from './durable-cases.js'
import { durableStorageCases } from './durable-storage-cases.js'
import { flowQueueCases } from './flow-queue-cases.js'
import { flowStorageCases } from './flow-storage-cases.js'
import type { StorageFactory } from './harness.js'
import { queueCases } from './queue-cases.js'
import { storageCases } from './storage-cases.js'

export type { StorageFactory, TestStorage } from './harness.js'

export function runConformance(name: string, factory: StorageFactory): void {
	describe(`conformance: ${name}`, () => {
		describe('storage contract', () => storageCases(factory))
		describe('queue', () => queueCases(factory))
		describe('flow: storage contract', () => flowStorageCases(factory))
		describe('flow: queue', () => flowQueueCases(factory))
		describe('durable storage', () => durableStorageCases(factory))
		describe('durable execution', () => durableCases(factory))
	})
}
