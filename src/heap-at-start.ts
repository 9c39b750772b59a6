// Imported first by cli.ts, before any other module: loading the daemon's modules alone grows V8's
// new space from 2 to 8 MiB, and it does not shrink back (see young-generation.ts).
import { keepYoungGenerationSmall } from './young-generation.js';

keepYoungGenerationSmall();
