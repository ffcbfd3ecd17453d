/**
 * `conveyor/admin`: the admin HTTP API definition and client, and the admin server.
 */
export * as AdminApi from "./AdminApi.js"
export * as AdminServer from "./AdminServer.js"
