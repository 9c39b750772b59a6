// The S3 side of `girder-server.py --assetstore s3`: re-pointing the assetstore (through Girder's own
// API) at a proxy in front of the local S3 server, what S3 answers for an expired URL, and what the
// bucket holds (moto checks no signature, so a plain GET lists it).
import type { Rest } from './girder-rest.js';

/** S3's answer to a presigned URL past its X-Amz-Expires (moto never sends it: a proxy does). */
export const S3_EXPIRED_BODY =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message>' +
  '<X-Amz-Expires>3600</X-Amz-Expires><RequestId>0</RequestId></Error>';

interface RawS3Assetstore {
  name: string;
  bucket: string;
  prefix?: string;
  accessKeyId: string;
  secret: string;
  region?: string | null;
}

/**
 * Make Girder reach the S3 assetstore at `service` (e.g. a fault proxy in front of moto) with
 * `PUT /assetstore/{id}`, as an administrator would: presigned URLs then point there too. Girder
 * checks it can write the bucket through the new service before it answers.
 */
export async function pointS3At(admin: Rest, assetstoreId: string, service: string): Promise<void> {
  const a = await admin.get<RawS3Assetstore>(`/assetstore/${assetstoreId}`);
  await admin.put(`/assetstore/${assetstoreId}`, {
    name: a.name,
    bucket: a.bucket,
    prefix: a.prefix ?? '',
    accessKeyId: a.accessKeyId,
    secret: a.secret,
    service,
    current: true,
    ...(a.region ? { region: a.region } : {}),
  });
}

/** Keys of the objects in `bucket` (and the multipart uploads still open), listed straight from the S3 server. */
export async function s3Objects(service: string, bucket: string): Promise<{ keys: string[]; openUploads: number }> {
  const list = await (await fetch(`${service}/${bucket}?list-type=2&max-keys=1000`)).text();
  const uploads = await (await fetch(`${service}/${bucket}?uploads`)).text();
  return {
    keys: [...list.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1] as string),
    openUploads: [...uploads.matchAll(/<Upload>/g)].length,
  };
}
