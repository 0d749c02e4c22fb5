/**
 * Kept for state written by 0.1.0: its stored provider `require`s this file by absolute path. A program that
 * upgraded the package in place keeps reading and deleting such resources until its next `pulumi up`
 * rewrites their state (dynamic.ts). The implementation is in rootfs/provider.ts.
 */
export * from "./rootfs/provider";
