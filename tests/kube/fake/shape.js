'use strict';
// Which lists of an object are maps keyed by some of their items' fields — what strategic
// merge patch calls patchMergeKey and server-side apply calls x-kubernetes-list-map-keys.
// Built-in kinds use a fixed table by field name (containers, env, volumes by `name`,
// volumeMounts by `mountPath`, ports by `containerPort`/`port`, conditions by `type`);
// custom resources read their CRD's schema. A shape is walked alongside a value:
// shape.child(field), shape.item(), shape.listKeys (null = atomic list), shape.set (a list of
// scalars merged as a set, like metadata.finalizers).

const BUILTIN_KEYS = {
  containers: ['name'], initContainers: ['name'], ephemeralContainers: ['name'],
  volumes: ['name'], env: ['name'], imagePullSecrets: ['name'], volumeMounts: ['mountPath'],
  volumeDevices: ['devicePath'], conditions: ['type'], ownerReferences: ['uid'],
  hostAliases: ['ip'], topologySpreadConstraints: ['topologyKey', 'whenUnsatisfiable'],
};
const BUILTIN_SETS = new Set(['finalizers']);

function builtinShape(name) {
  return {
    get listKeys() {
      if (name === 'ports') return null; // decided per value by keysFor
      return BUILTIN_KEYS[name] || null;
    },
    set: BUILTIN_SETS.has(name),
    keysFor(items) {
      if (name === 'ports') {
        if (items.some(i => i && typeof i === 'object' && 'containerPort' in i)) return ['containerPort'];
        if (items.some(i => i && typeof i === 'object' && 'port' in i)) return ['port'];
        return null;
      }
      return this.listKeys;
    },
    child: n => builtinShape(n),
    item: () => builtinShape(''),
  };
}

const ANY = {
  listKeys: null, set: false, keysFor: () => null,
  child: () => ANY, item: () => ANY,
};

function schemaShape(schema) {
  if (!schema) return ANY;
  return {
    listKeys: schema['x-kubernetes-list-type'] === 'map' ? (schema['x-kubernetes-list-map-keys'] || []) : null,
    set: schema['x-kubernetes-list-type'] === 'set',
    keysFor() { return this.listKeys; },
    child(n) {
      if (schema.properties && schema.properties[n]) return schemaShape(schema.properties[n]);
      if (n === 'metadata') return builtinShape('metadata');
      if (schema.additionalProperties && typeof schema.additionalProperties === 'object') return schemaShape(schema.additionalProperties);
      return ANY;
    },
    item: () => schemaShape(schema.items),
  };
}

// The shape of a whole object of a resource: metadata always as the built-in ObjectMeta.
// statusSeparate: the resource has a status subresource.
function shapeFor(res) {
  if (!res.schema) return { ...builtinShape(''), statusSeparate: res.status };
  const root = schemaShape(res.schema);
  return { ...root, statusSeparate: res.status, child: n => (n === 'metadata' ? builtinShape('metadata') : root.child(n)) };
}

function keyOf(item, keys) {
  const k = {};
  for (const key of keys) k[key] = item == null ? undefined : item[key];
  return JSON.stringify(k);
}

module.exports = { shapeFor, keyOf };
