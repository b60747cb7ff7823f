/**
 * Where downloads and derived files (CIFAR-10, Inception weights, FID reference features) are
 * cached.
 *
 * @module
 */

/**
 * The project's cache folder: `$XDG_CACHE_HOME/deno-diffusion`, else `~/.cache/deno-diffusion`.
 *
 * @example
 * ```ts
 * import { defaultCacheDir } from "./cache.ts";
 * console.log(defaultCacheDir()); // e.g. "/home/me/.cache/deno-diffusion"
 * ```
 */
export function defaultCacheDir(): string {
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/deno-diffusion`;
  const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
  if (!home) throw new Error("cannot find a cache folder: set XDG_CACHE_HOME or HOME");
  return `${home}/.cache/deno-diffusion`;
}
