// Reading the worker's Prometheus text: every sample by its name and labels as written
// (`enrollment_jobs_failed_total{code="INVALID_IMAGE"}`), so a test can assert exact counts.

/** Every sample of a Prometheus text exposition; comment lines are skipped. */
export function parseMetrics(text: string): Record<string, number> {
  const samples: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples[line.slice(0, at)] = Number(line.slice(at + 1));
  }
  return samples;
}

/** GETs `url` (a worker's `/metrics`) and parses it. */
export async function scrapeMetrics(url: string): Promise<Record<string, number>> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  return parseMetrics(await res.text());
}
