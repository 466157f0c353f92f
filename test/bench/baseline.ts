// The plain loop: the shared SDK loop (sdk-loop.ts) storing the bytes as received. No validation,
// no image decoding: the floor any framework is measured against (the framework's own cost).
import { runSdkLoop } from './sdk-loop.ts';

await runSdkLoop(async (received) => ({ bytes: received, png: received[0] === 0x89 }));
