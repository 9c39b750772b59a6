// read-mount.test.ts again, on a server that keeps its bytes in S3 (girder-server.py --assetstore
// s3): every read goes through Girder's 303 to a presigned URL. The env var is set before the
// import, which starts its server with the default assetstore (test/helpers/girder-server.ts).
process.env.GIRDER_TEST_ASSETSTORE = 's3';
await import('./read-mount.test.js');
