export { LocalWriter, localWriter, type BarrierResult } from './writer.js';
