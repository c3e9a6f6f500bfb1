#!/usr/bin/env node
// The CLI: the built bundle when it exists, else straight from the sources (dev checkout).
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const built = join(__dirname, '..', 'dist', 'cli.js');
if (existsSync(built)) {
  require(built);
} else {
  require('tsx/cjs');
  require(join(__dirname, '..', 'src', 'cli', 'main.ts'));
}
