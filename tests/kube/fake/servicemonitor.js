'use strict';
// `--servicemonitor`: the monitoring.coreos.com/v1 ServiceMonitor kind, installed as a real
// cluster gets it (a CRD from the Prometheus operator), so charts with an optional
// ServiceMonitor can be installed. Its schema keeps every field.

function install(store) {
  const crds = store.resource('apiextensions.k8s.io', 'v1', 'customresourcedefinitions');
  store.create(crds, '', {
    apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition',
    metadata: { name: 'servicemonitors.monitoring.coreos.com' },
    spec: {
      group: 'monitoring.coreos.com', scope: 'Namespaced',
      names: { kind: 'ServiceMonitor', listKind: 'ServiceMonitorList', plural: 'servicemonitors', singular: 'servicemonitor', shortNames: ['smon'], categories: ['prometheus-operator'] },
      versions: [{ name: 'v1', served: true, storage: true,
        schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } } } }],
    },
  }, { fieldManager: 'fake-apiserver' });
}

module.exports = { install };
