#!/usr/bin/env node
// `tessera` on the PATH (npm link, npx tessera): runs the TypeScript CLI through tsx's loader.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
