#!/usr/bin/env node
// Thin launcher so `npm install -g` / `npx replug-code` find the bundled CLI.
require('../dist/cli.js');
