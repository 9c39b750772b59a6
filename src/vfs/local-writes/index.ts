export { abandoned, LocalWriter, localWriter, type BarrierResult, type WriteFds } from './writer.js';
