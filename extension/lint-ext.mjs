// `web-ext lint` with one switch of Mozilla's addons-linter turned on:
// enableBackgroundServiceWorker. web-ext itself offers no option for it (its
// lint command passes a fixed config to addons-linter), so this runs web-ext's
// own lint command with a linter factory that adds that one flag.
//
// Why: one manifest serves Chrome (MV3 needs background.service_worker) and
// Firefox (which runs background.scripts and ignores service_worker). Without
// the flag, addons-linter reports service_worker as unsupported (a warning, as
// `scripts` is there too). With it, the linter checks the key properly (the
// file must exist) instead; every other check is web-ext's, unchanged.
//
//   node lint-ext.mjs    (npm run lint:ext)
import webExt from 'web-ext';
import { createInstance } from 'addons-linter';

const IGNORED = ['node_modules/**', 'package.json', 'package-lock.json', 'eslint.config.js', 'jsconfig.json', 'lint-ext.mjs'];

await webExt.cmd.lint(
  { sourceDir: import.meta.dirname, ignoreFiles: IGNORED, selfHosted: true, warningsAsErrors: true },
  {
    createLinter: ({ config, runAsBinary }) =>
      createInstance({ config: { ...config, enableBackgroundServiceWorker: true }, runAsBinary }),
    shouldExitProgram: true,
  },
);
