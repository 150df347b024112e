'use strict';
// The RBAC the chart grants is charts/lanekeeper/rbac-verbs.yaml, as it is, whatever the
// values: the one list that KubeRbac.* (tests/kube_rbac_test.cc) compares with what the
// controller calls. Nothing broader (no wildcard, no other rule) is ever rendered.

const test = require('node:test');
const assert = require('node:assert/strict');
const { render, find, rbacVerbs } = require('./render');

const rulesOf = objs => objs.filter(o => o.kind === 'Role' || o.kind === 'ClusterRole');

test('the rendered Role, ClusterRole and lease Role are rbac-verbs.yaml, for every shape of install', async () => {
  const { lanes, leaderElection } = rbacVerbs();
  const cases = [
    [[], [['Role', 'lk-lanekeeper', lanes]]],
    [['watchNamespace=team-a'], [['Role', 'lk-lanekeeper', lanes]]],
    [['allNamespaces=true'], [['ClusterRole', 'lk-lanekeeper', lanes]]],
    [['replicaCount=2'], [['Role', 'lk-lanekeeper', lanes], ['Role', 'lk-lanekeeper-leader-election', leaderElection]]],
    [['allNamespaces=true', 'leaderElection.enabled=true'],
      [['ClusterRole', 'lk-lanekeeper', lanes], ['Role', 'lk-lanekeeper-leader-election', leaderElection]]],
  ];
  for (const [sets, want] of cases) {
    const objs = await render(sets);
    const roles = rulesOf(objs);
    assert.deepEqual(roles.map(r => [r.kind, r.metadata.name]).sort(), want.map(([k, n]) => [k, n]).sort(), sets.join());
    for (const [kind, name, rules] of want) {
      assert.deepEqual(find(objs, kind, name).rules, rules, `${kind} ${name} with ${sets.join()}`);
    }
    for (const role of roles) {
      for (const rule of role.rules) {
        assert.ok(!rule.verbs.includes('*') && !rule.resources.includes('*') && !rule.apiGroups.includes('*'), JSON.stringify(rule));
      }
    }
  }
});
