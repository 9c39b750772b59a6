import { createHash } from 'node:crypto';
import { join } from 'node:path';

/**
 * Where the daemon serving `mountpoint` listens for `status` and `unmount`: an owner-only directory
 * in the runtime directory, one socket per mountpoint.
 */
export function controlDir(env: NodeJS.ProcessEnv = process.env): string {
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return '/run/girder-mount';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'girder-mount');
  return `/tmp/girder-mount-${uid}`;
}

export function controlSocketPath(mountpoint: string, env: NodeJS.ProcessEnv = process.env): string {
  const tag = createHash('sha256').update(mountpoint).digest('hex').slice(0, 16);
  return join(controlDir(env), `${tag}.sock`);
}
