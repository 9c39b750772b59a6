export { UploadQueue, type UploadQueueOptions } from './upload-queue.js';
export {
  NameInTheWayError, UploadCancelledError, UploadKeptError, UploadQueueClosedError,
  type UploadJob, type UploadResult, type UploadStatus, type UploadTarget,
} from './types.js';
export { sha512File, type FileHash } from './sha512-file.js';
