'use strict';
/**
 * The contract: the repository's proto files (proto/riskbudget/v1, the one source of truth),
 * loaded at run time with @grpc/proto-loader. Nothing is generated or copied, so the Node
 * client can never drift from the proto.
 *
 * Messages are plain objects with camelCase fields; enum values are their names
 * ('DECISION_APPROVED'), or numbers for values newer than the proto loaded; 64-bit integers
 * (sequences) are decimal strings; every field is present, unset ones with their defaults.
 */

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', '..', 'proto');
const PROTO_FILES = [
  'riskbudget/v1/risk_budget_service.proto',
  'riskbudget/v1/risk_budget_admin.proto',
];

const packageDefinition = protoLoader.loadSync(PROTO_FILES, {
  includeDirs: [PROTO_ROOT],
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});

/**
 * The gRPC service constructors (`new RiskBudgetService(target, credentials, options)`), for
 * calls the client does not wrap.
 */
const { RiskBudgetService, RiskBudgetAdminService } =
  grpc.loadPackageDefinition(packageDefinition).riskbudget.v1;

/** The names of the values of enum `name` of riskbudget.v1, in number order. */
function enumValueNames(name) {
  return packageDefinition[`riskbudget.v1.${name}`].type.value.map((value) => value.name);
}

/** The name of an enum value as loaded: the name itself, or PREFIX_<number> for a newer value. */
function enumName(prefix, value) {
  return typeof value === 'number' ? `${prefix}_${value}` : value;
}

module.exports = { RiskBudgetService, RiskBudgetAdminService, enumValueNames, enumName };
