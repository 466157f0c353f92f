// What keeps README.md and docs/ from rotting silently: every relative link and #anchor resolves
// (by GitHub's heading slugs), every `npm run <script>` names a script of package.json, and every
// `enrollment-worker <command> --flag` is one the CLI's usage text offers. Pure functions over
// texts, so the test can show each one failing on a broken input.
import path from 'node:path';

/** The text outside fenced code blocks, with each code block's lines blanked (line numbers kept). */
export function prose(text: string): string {
  let fenced = false;
  return text
    .split('\n')
    .map((line) => {
      if (/^\s*(```|~~~)/.test(line)) {
        fenced = !fenced;
        return '';
      }
      return fenced ? '' : line;
    })
    .join('\n');
}

/** The code of a text: fenced blocks and inline code spans. */
export function codeOf(text: string): string[] {
  const code: string[] = [];
  let fenced = false;
  for (const line of text.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      continue;
    }
    if (fenced) code.push(line);
    else for (const m of line.matchAll(/`([^`]+)`/g)) code.push(m[1] ?? '');
  }
  return code;
}

/** GitHub's anchor for a heading: lower-case, punctuation dropped, each space a '-'. */
export function slug(heading: string): string {
  const text = heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // a link shows its text
    .replace(/[`*]/g, '') // code and emphasis marks are not text
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{N}\p{M}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** Every anchor a file's headings give, with GitHub's -1, -2 … for repeats. */
export function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of prose(text).split('\n')) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (m === null) continue;
    const base = slug(m[1] ?? '');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Relative links (and their #anchors) in `files` (path → text) that lead nowhere, as "file: target — why". */
export function brokenLinks(files: ReadonlyMap<string, string>, exists: (file: string) => boolean): string[] {
  const broken: string[] = [];
  for (const [file, text] of files) {
    // Inline code is not a link: blank it before looking.
    const lines = prose(text).replace(/`[^`\n]*`/g, '');
    for (const m of lines.matchAll(/\[[^\]]*\]\(\s*([^)\s]+)(?:\s+"[^"]*")?\s*\)/g)) {
      const target = m[1] ?? '';
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
      const [pathPart = '', anchor] = target.split('#', 2);
      const resolved = pathPart === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), pathPart));
      const text = files.get(resolved);
      if (text === undefined && !exists(resolved)) {
        broken.push(`${file}: ${target} — no file ${resolved}`);
        continue;
      }
      if (anchor === undefined) continue;
      if (text === undefined) {
        broken.push(`${file}: ${target} — ${resolved} is not a Markdown file that is checked`);
      } else if (!anchorsOf(text).has(anchor)) {
        broken.push(`${file}: ${target} — no heading in ${resolved} gives #${anchor}`);
      }
    }
  }
  return broken;
}

/** `npm run <script>` the texts name that package.json does not have. */
export function unknownScripts(files: ReadonlyMap<string, string>, scripts: ReadonlySet<string>): string[] {
  const unknown: string[] = [];
  for (const [file, text] of files) {
    for (const m of text.matchAll(/\bnpm run(?:\s+(?:-s|--silent))?\s+([a-z][\w:.-]*[\w])/g)) {
      const name = m[1] ?? '';
      if (!scripts.has(name)) unknown.push(`${file}: npm run ${name}`);
    }
  }
  return unknown;
}

/** The commands of the CLI and the flags of each, from its usage text (a command's flags may wrap onto indented lines). */
export function commandsOf(usage: string): Map<string, Set<string>> {
  const commands = new Map<string, Set<string>>();
  let flags: Set<string> | undefined;
  for (const line of usage.split('\n')) {
    const command = /^ {2}([a-z]+)\b/.exec(line);
    if (command !== null) commands.set(command[1] ?? '', (flags = new Set()));
    else if (!/^ {3}/.test(line)) flags = undefined;
    for (const f of line.matchAll(/--[a-z][a-z-]*/g)) flags?.add(f[0]);
  }
  return commands;
}

/** `enrollment-worker <command> [--flag…]` in the texts' code that the CLI does not have. */
export function unknownCommands(files: ReadonlyMap<string, string>, commands: ReadonlyMap<string, ReadonlySet<string>>): string[] {
  const unknown: string[] = [];
  for (const [file, text] of files) {
    for (const code of codeOf(text)) {
      // Not a unit, a path or a release name (enrollment-worker@2, /opt/enrollment-worker/…, enrollment-worker-0.1.0).
      for (const m of code.matchAll(/(?<![\w/.@-])enrollment-worker ([a-z][a-z-]*)([^|&;#]*)/g)) {
        const command = m[1] ?? '';
        const flags = commands.get(command);
        if (flags === undefined) {
          unknown.push(`${file}: enrollment-worker ${command}`);
          continue;
        }
        for (const f of (m[2] ?? '').matchAll(/(?<![\w-])--[a-z][a-z-]*/g)) {
          if (!flags.has(f[0])) unknown.push(`${file}: enrollment-worker ${command} ${f[0]}`);
        }
      }
    }
  }
  return unknown;
}
