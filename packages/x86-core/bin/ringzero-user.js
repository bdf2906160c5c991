#!/usr/bin/env node
// Launcher kept outside dist/ so npm can link it before the first build; the CLI itself is dist/cli.js.
import('../dist/cli.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli.js')) {
    process.stderr.write('This package is not built yet: run `npm run build` at the repository root.\n');
    process.exit(1);
  }
  throw err;
});
