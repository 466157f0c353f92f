// Starts the one emulator the integration tests share, and hands its endpoints to them.
import type { TestProject } from 'vitest/node';
import { startEmulator } from './emulator.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    emulator: { kind: string; endpoint: string; imdsEndpoint: string; description: string; motoPid: number | null };
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const emulator = await startEmulator();
  project.provide('emulator', {
    kind: emulator.kind,
    endpoint: emulator.endpoint,
    imdsEndpoint: emulator.imdsEndpoint,
    description: emulator.description,
    motoPid: emulator.motoPid ?? null,
  });
  return () => emulator.stop();
}
