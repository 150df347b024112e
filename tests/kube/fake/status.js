'use strict';
// Kubernetes `Status` objects: the shape of every error the fake API server answers with
// (NotFound, AlreadyExists, Conflict, Invalid, Gone, ...). Handlers throw an ApiError; the
// HTTP layer turns it into a Status body with the same code, as the real server does.

class ApiError extends Error {
  constructor(code, reason, message, details) {
    super(message);
    this.code = code;
    this.reason = reason;
    this.details = details;
  }

  toStatus() {
    const s = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
      message: this.message, reason: this.reason, code: this.code };
    if (this.details) s.details = this.details;
    return s;
  }
}

function groupOf(res) { return res.group || undefined; }

const errors = {
  notFound: (res, name) => new ApiError(404, 'NotFound',
    `${res.plural}${res.group ? '.' + res.group : ''} "${name}" not found`,
    { name, group: groupOf(res), kind: res.plural }),
  namespaceNotFound: (ns) => new ApiError(404, 'NotFound', `namespaces "${ns}" not found`,
    { name: ns, kind: 'namespaces' }),
  alreadyExists: (res, name) => new ApiError(409, 'AlreadyExists',
    `${res.plural}${res.group ? '.' + res.group : ''} "${name}" already exists`,
    { name, group: groupOf(res), kind: res.plural }),
  conflict: (res, name) => new ApiError(409, 'Conflict',
    `Operation cannot be fulfilled on ${res.plural}${res.group ? '.' + res.group : ''} "${name}": ` +
    'the object has been modified; please apply your changes to the latest version and try again',
    { name, group: groupOf(res), kind: res.plural }),
  // causes: [{field, message, reason}], `field: message` each, as kubectl prints them.
  invalid: (res, name, causes) => new ApiError(422, 'Invalid',
    `${res.kind}${res.group ? '.' + res.group : ''} "${name}" is invalid: ` +
    (causes.length === 1 ? `${causes[0].field}: ${causes[0].message}`
      : '[' + causes.map(c => `${c.field}: ${c.message}`).join(', ') + ']'),
    { name, group: groupOf(res), kind: res.kind,
      causes: causes.map(c => ({ reason: c.reason || 'FieldValueInvalid', message: c.message, field: c.field })) }),
  badRequest: (message) => new ApiError(400, 'BadRequest', message),
  gone: (message) => new ApiError(410, 'Expired', message),
  methodNotAllowed: (message) => new ApiError(405, 'MethodNotAllowed', message),
  unsupportedMediaType: (type) => new ApiError(415, 'UnsupportedMediaType',
    `the body of the request was in an unknown format - accepted media types include: ` +
    `application/json, application/yaml, application/vnd.kubernetes.protobuf (got ${type})`),
  unauthorized: () => new ApiError(401, 'Unauthorized', 'Unauthorized'),
  internal: (message) => new ApiError(500, 'InternalError', message),
};

module.exports = { ApiError, errors };
