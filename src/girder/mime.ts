/** A MIME type for a new file from its name (Girder stores it and sends it back on download). */

const BY_EXTENSION: Record<string, string> = {
  txt: 'text/plain', log: 'text/plain', md: 'text/markdown', csv: 'text/csv', tsv: 'text/tab-separated-values',
  html: 'text/html', htm: 'text/html', css: 'text/css', js: 'text/javascript', mjs: 'text/javascript',
  json: 'application/json', xml: 'application/xml', yaml: 'application/yaml', yml: 'application/yaml',
  pdf: 'application/pdf', zip: 'application/zip', gz: 'application/gzip', tgz: 'application/gzip',
  bz2: 'application/x-bzip2', xz: 'application/x-xz', tar: 'application/x-tar', '7z': 'application/x-7z-compressed',
  png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', bmp: 'image/bmp', webp: 'image/webp',
  svg: 'image/svg+xml', tif: 'image/tiff', tiff: 'image/tiff', ico: 'image/vnd.microsoft.icon',
  mp3: 'audio/mpeg', wav: 'audio/wav', ogg: 'audio/ogg', flac: 'audio/flac',
  mp4: 'video/mp4', webm: 'video/webm', mkv: 'video/x-matroska', avi: 'video/x-msvideo', mov: 'video/quicktime',
  dcm: 'application/dicom', h5: 'application/x-hdf5', hdf5: 'application/x-hdf5',
  py: 'text/x-python', sh: 'application/x-sh', c: 'text/x-c', h: 'text/x-c',
};

export const DEFAULT_MIME_TYPE = 'application/octet-stream';

export function guessMimeType(name: string): string {
  const dot = name.lastIndexOf('.');
  if (dot <= 0 || dot === name.length - 1) return DEFAULT_MIME_TYPE;
  return BY_EXTENSION[name.slice(dot + 1).toLowerCase()] ?? DEFAULT_MIME_TYPE;
}
