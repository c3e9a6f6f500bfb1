// Lint + the import boundaries between the rooms (STYLE.md): core is pure, protocol is plain
// data, only the host touches vscode, and the host never loads tfjs or the engine.
import tseslint from 'typescript-eslint';

const tfjs = { group: ['@tensorflow/*'], message: 'only src/engine may load tfjs' };
const vscode = { name: 'vscode', message: 'only src/host may import vscode' };
const room = (name, why) => ({ group: [`**/${name}/*`, `../${name}/*`, `../../src/${name}/*`], message: why });

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'out/**', '.e2e/**', 'test-results/**', 'examples/**/runs/**', 'bench/out/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-eval': 'error',
      'no-implied-eval': 'error',
      'no-new-func': 'error',
    },
  },
  {
    files: ['bin/**/*.js', 'scripts/**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', __dirname: 'readonly', module: 'readonly', process: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [vscode],
        patterns: [tfjs, room('engine', 'core is pure'), room('host', 'core is pure'), room('cli', 'core is pure'), room('protocol', 'core does not depend on protocol')],
      }],
    },
  },
  {
    files: ['src/protocol/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [vscode],
        patterns: [tfjs, room('engine', 'protocol is plain data'), room('host', 'protocol is plain data'), room('cli', 'protocol is plain data')],
      }],
    },
  },
  {
    files: ['src/engine/**/*.ts', 'src/cli/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: [vscode], patterns: [room('host', 'the engine never depends on the extension host')] }],
    },
  },
  {
    files: ['src/host/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [tfjs, room('engine', 'the host talks to the engine through the worker protocol only'), room('cli', 'the host does not use the CLI')],
      }],
    },
  },
  {
    files: ['webview/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [vscode],
        patterns: [tfjs, { group: ['node:*'], message: 'the webview runs in a browser' }, room('engine', 'webview uses protocol + core only'), room('host', 'webview uses protocol + core only')],
      }],
    },
  },
);
