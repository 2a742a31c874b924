#!/usr/bin/env node
// Runs the TypeScript CLI in this process, with tsx registered as the loader, so `dialer` works after `npm ci`
// with no build step and signals (a container's SIGTERM included) reach the CLI itself, which drains on the first.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
