/**
 * The one HTTP downloader: a file fetched through a temp file in the target's folder, with a
 * timeout on connecting, progress, an optional MD5 and an optional check of the finished
 * file; on any failure nothing is left at the target or in the temp file.
 *
 * @module
 */
import { Md5 } from "./md5.ts";
import { type ByteProgress, byteProgress } from "./progress.ts";

/** Options of {@link downloadFile}. */
export interface DownloadOptions {
  /** Expected MD5 (hex) of the whole file. */
  md5?: string;
  /** Progress callback; default a status line on stderr. */
  onProgress?: ByteProgress;
  /**
   * Time allowed for connecting and the response headers. Default 30 s. The body of a large
   * download may take much longer on a slow link, so it is not covered.
   */
  timeoutMs?: number;
  /** Checks the downloaded temp file before it is moved into place; throw to refuse it. */
  verify?: (tempPath: string) => Promise<void>;
}

/**
 * Downloads `url` to `dest`.
 *
 * @example
 * ```ts ignore needs-network
 * import { downloadFile } from "./download.ts";
 * await downloadFile("https://example.org/data.tar.gz", "/tmp/data.tar.gz", { md5: "c32a1d4a..." });
 * ```
 */
export async function downloadFile(
  url: string,
  dest: string,
  options: DownloadOptions = {},
): Promise<void> {
  const temp = `${dest}.${crypto.randomUUID().slice(0, 8)}.part`;
  const onProgress = options.onProgress ?? byteProgress(url.split("/").pop() ?? url);
  try {
    let response: Response;
    const connect = new AbortController();
    const timer = setTimeout(() => connect.abort(), options.timeoutMs ?? 30_000);
    try {
      response = await fetch(url, { signal: connect.signal });
    } catch (error) {
      const why = connect.signal.aborted ? "no answer (timed out)" : (error as Error).message;
      throw new Error(`cannot download ${url}: ${why}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new Error(`cannot download ${url}: HTTP ${response.status} ${response.statusText}`);
    }
    const lengthHeader = response.headers.get("content-length");
    const total = lengthHeader ? Number(lengthHeader) : null;
    const hash = options.md5 ? new Md5() : null;
    let received = 0;
    const file = await Deno.open(temp, { write: true, createNew: true });
    try {
      for await (const chunk of response.body) {
        hash?.update(chunk);
        received += chunk.length;
        for (let p = 0; p < chunk.length;) p += await file.write(chunk.subarray(p));
        onProgress(received, total);
      }
    } finally {
      file.close();
    }
    if (total !== null && received !== total) {
      throw new Error(`download of ${url} stopped at ${received} of ${total} bytes`);
    }
    const digest = hash?.hex();
    if (options.md5 && digest !== options.md5.toLowerCase()) {
      throw new Error(
        `download of ${url} has MD5 ${digest}, expected ${options.md5}: the file is corrupt or ` +
          `not the official release; it was deleted, try again`,
      );
    }
    await options.verify?.(temp);
    await Deno.rename(temp, dest);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}
