export { abandoned, LocalWriter, localWriter, startLocalWriter, type BarrierResult, type WriteFds } from './writer.js';
