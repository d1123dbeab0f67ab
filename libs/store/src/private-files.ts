/**
 * Makes every file this thread creates or chmods its owner's alone (no group
 * or other bits), whatever mode the caller asks for: PGlite's file system
 * layer sets 0666 on the database's files explicitly, past the umask, and
 * those files hold prompts, outputs and job environments. Imported first
 * by the PGlite worker thread (fs is per thread, so nothing else is touched).
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const OWNER_ONLY = ~0o077;
const own = (mode: unknown): unknown => (typeof mode === 'number' ? mode & OWNER_ONLY : mode);

const { chmodSync, fchmodSync, openSync, mkdirSync } = fs;
fs.chmodSync = (path, mode) => chmodSync(path, own(mode) as fs.Mode);
fs.fchmodSync = (fd, mode) => fchmodSync(fd, own(mode) as fs.Mode);
fs.openSync = ((path: fs.PathLike, flags?: fs.OpenMode, mode?: fs.Mode | null) => openSync(path, flags ?? 'r', own(mode ?? 0o600) as fs.Mode)) as typeof fs.openSync;
fs.mkdirSync = ((path: fs.PathLike, options?: fs.Mode | fs.MakeDirectoryOptions | null) =>
  mkdirSync(path, typeof options === 'object' && options !== null ? { ...options, mode: own(options.mode ?? 0o700) as fs.Mode } : (own(options ?? 0o700) as fs.Mode))) as typeof fs.mkdirSync;
syncBuiltinESMExports();
