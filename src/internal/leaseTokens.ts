/**
 * The SQL stores' fencing tokens are drawn, not counted. On PostgreSQL a claim commits without
 * waiting for the disk (so does a single job's insert for a local worker), and SQLite in WAL mode
 * can lose its last commits to a power cut: a database crash can forget a claim whose worker
 * already runs the job. Counted up, the job's next claim would hand out that same token again,
 * and the first worker's settlement would still apply. Instead each claim adds a random step in
 * [1, modulus) to the job's token, modulo a prime that fits a 32-bit column: the new token always
 * differs from the job's last one, and from a forgotten one but by a 1 in 2^31 chance.
 */
import { Random } from "effect"

export const leaseTokenModulus = 2_147_483_647

/** A claim's step for the lease tokens of the jobs it takes. */
export const drawTokenStep = Random.nextIntBetween(1, leaseTokenModulus)
