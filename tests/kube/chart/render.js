'use strict';
// charts/lanekeeper rendered by the real helm (helm template: no server), as objects to
// check, and the chart's one list of RBAC rules (rbac-verbs.yaml).

const fs = require('fs');
const path = require('path');
const yaml = require('js-yaml');
const { run, HELM, REPO, requireTools } = require('../harness');

const CHART = path.join(REPO, 'charts', 'lanekeeper');

// helm args → {code, stdout, stderr}; HOME and helm's dirs private to this process.
async function helm(args) {
  requireTools();
  const home = fs.mkdtempSync(path.join(require('os').tmpdir(), 'lanekeeper-chart-test-'));
  try {
    return await run(HELM, args, { env: { PATH: process.env.PATH, HOME: home, HELM_CACHE_HOME: path.join(home, 'c'),
      HELM_CONFIG_HOME: path.join(home, 'g'), HELM_DATA_HOME: path.join(home, 'd') }, cwd: REPO });
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
}

// The objects of `helm template lk charts/lanekeeper -n lanekeeper` with --set values.
async function render(sets = []) {
  const r = await helm(['template', 'lk', CHART, '-n', 'lanekeeper', ...sets.flatMap(s => ['--set', s])]);
  if (r.code !== 0) throw new Error(`helm template ${sets.join(' ')} failed (${r.code}): ${r.stderr}`);
  return yaml.loadAll(r.stdout).filter(Boolean);
}

const find = (objs, kind, name) => objs.find(o => o.kind === kind && (!name || o.metadata.name === name));
const rbacVerbs = () => yaml.load(fs.readFileSync(path.join(CHART, 'rbac-verbs.yaml'), 'utf8'));

module.exports = { CHART, helm, render, find, rbacVerbs };
