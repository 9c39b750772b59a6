// Girder's own Python client (PyPI girder-client, in the test venv), a reference for uploads and
// downloads of whole trees.
import path from 'node:path';
import { venvPython } from '../../test/helpers/girder-server.js';
import { shellQuote as q } from '../../test/helpers/mount.js';
import type { BenchContext } from './context.js';

/**
 * Seconds `girder-client <args>` took against `apiUrl`. The API key goes in the environment
 * (GIRDER_API_KEY), never on a command line; the client trades it for a token in one request.
 */
export async function girderClient(ctx: BenchContext, apiUrl: string, apiKey: string, args: readonly string[]): Promise<number> {
  const bin = path.join(path.dirname(venvPython()), 'girder-client');
  return (await ctx.timed(`${q(bin)} --api-url ${q(apiUrl)} ${args.map(q).join(' ')}`, { GIRDER_API_KEY: apiKey })).seconds;
}
