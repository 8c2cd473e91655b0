// ESLint flat config: background and extension pages are ES modules, content
// scripts and shared/wire.js are classic scripts sharing one namespace.
import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['node_modules/**'] },
  js.configs.recommended,
  {
    files: ['src/**/*.js'],
    languageOptions: {
      ecmaVersion: 2024,
      sourceType: 'module',
      globals: { ...globals.browser, ...globals.webextensions, veilWire: 'readonly' },
    },
    rules: {
      'no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      eqeqeq: 'error',
      'prefer-const': 'error',
    },
  },
  {
    files: ['src/background/**/*.js'],
    languageOptions: { globals: { ...globals.serviceworker, ...globals.webextensions, veilWire: 'readonly' } },
  },
  {
    files: ['src/content/**/*.js', 'src/shared/wire.js'],
    languageOptions: {
      sourceType: 'script',
      globals: { ...globals.browser, ...globals.webextensions, veilContent: 'writable', veilWire: 'writable' },
    },
  },
  {
    // Runs in the page's own world: a classic script with no extension API.
    files: ['src/page/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser, veilPage: 'readonly' } },
  },
  {
    files: ['eslint.config.js', 'lint-ext.mjs'],
    languageOptions: { sourceType: 'module', globals: globals.node },
  },
];
