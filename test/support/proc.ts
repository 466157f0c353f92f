// What a process costs, read from /proc (Linux) in this one place: CPU seconds of all its threads (or
// of a whole process tree), current and peak resident memory. Used by the benchmark, the memory soak
// and the fault scenarios.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** The fields of a /proc stat file after the command name (which is in parentheses and may hold spaces): [0] is state (field 3). */
function statFields(path: string): string[] {
  const stat = readFileSync(path, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** The process's state letter (`R` running, `S` sleeping, `T` stopped by a signal, …); '' when it is gone. */
export function processState(pid: number): string {
  try {
    return statFields(`/proc/${pid}/stat`)[0] ?? '';
  } catch {
    return '';
  }
}

/** User + system CPU seconds the process has used so far (all threads; 10 ms resolution). */
export function cpuSeconds(pid: number): number {
  const rest = statFields(`/proc/${pid}/stat`);
  return (Number(rest[11]) + Number(rest[12])) / clockTicks();
}

/** User + system CPU seconds of one thread of a process (the main thread's id is the pid). */
export function threadCpuSeconds(pid: number, tid = pid): number {
  const rest = statFields(`/proc/${pid}/task/${tid}/stat`);
  return (Number(rest[11]) + Number(rest[12])) / clockTicks();
}

/** Each live process's children, from the parent pid in /proc/<pid>/stat (one pass over /proc). */
function childrenByParent(): Map<number, number[]> {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(statFields(`/proc/${entry}/stat`)[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  return parents;
}

/** The live children of a process (pids). */
export function childrenOf(pid: number): number[] {
  return childrenByParent().get(pid) ?? [];
}

/** A process's command name (`/proc/<pid>/comm`), or '' when it is gone. */
export function commandName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The process and every live descendant (pids). */
export function processTree(pid: number): number[] {
  const parents = childrenByParent();
  const tree: number[] = [];
  const visit = (p: number) => {
    tree.push(p);
    for (const child of parents.get(p) ?? []) visit(child);
  };
  visit(pid);
  return tree;
}

/** Node names the OS thread of each `worker_threads` Worker this (in /proc/<pid>/task/<tid>/comm). */
const WORKER_THREAD_NAME = 'WorkerThread';

/** CPU seconds and count of a process's live worker threads (the face detector's, in the worker). */
function workerThreadCpu(pid: number): { seconds: number; count: number } {
  let seconds = 0;
  let count = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      if (readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim() !== WORKER_THREAD_NAME) continue;
      seconds += threadCpuSeconds(pid, Number(tid));
      count += 1;
    } catch {
      // ended meanwhile
    }
  }
  return { seconds, count };
}

/**
 * CPU seconds of a process and all its descendants: their own user + system time, and that of
 * the children they have reaped (cutime + cstime), so a worker that runs several processes is
 * measured whole. `mainThreads` is the sum over those processes of their main thread alone;
 * `workerThreads` of their live `worker_threads` (a thread that ended takes its time with it, so
 * read it as a lower bound), with how many there are.
 */
export function treeCpuSeconds(pid: number): { all: number; mainThreads: number; workerThreads: number; workerThreadCount: number; processes: number } {
  let ticks = 0;
  let main = 0;
  let workers = 0;
  let workerCount = 0;
  let processes = 0;
  for (const p of processTree(pid)) {
    try {
      const rest = statFields(`/proc/${p}/stat`);
      ticks += Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]);
      main += threadCpuSeconds(p) * clockTicks();
      const threads = workerThreadCpu(p);
      workers += threads.seconds;
      workerCount += threads.count;
      processes += 1;
    } catch {
      // exited meanwhile: its time is in its parent's cutime once reaped
    }
  }
  return { all: ticks / clockTicks(), mainThreads: main / clockTicks(), workerThreads: workers, workerThreadCount: workerCount, processes };
}

function statusKb(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = status.split('\n').find((l) => l.startsWith(`${field}:`));
  return Number(line?.split(/\s+/)[1] ?? Number.NaN);
}

/** The CPUs the process may run on, as the kernel lists them (`0`, `0-1`, …): shows a taskset pin took. */
export function cpusAllowedList(pid: number): string {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return /^Cpus_allowed_list:\s*(.+)$/m.exec(status)?.[1]?.trim() ?? 'unknown';
}

/** Resident set size now, in MiB. */
export function rssMiB(pid: number): number {
  return statusKb(pid, 'VmRSS') / 1024;
}

/** Peak resident set size (VmHWM), in MiB. */
export function peakRssMiB(pid: number): number {
  return statusKb(pid, 'VmHWM') / 1024;
}

/** `read` summed over a process and its live descendants; one that exits meanwhile counts nothing. */
function sumOverTree(pid: number, read: (pid: number) => number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      total += read(p);
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

/** Resident set size now of a process and its live descendants, in MiB. */
export function treeRssMiB(pid: number): number {
  return sumOverTree(pid, rssMiB);
}

/** Sum of the peak resident set sizes of a process and its live descendants, in MiB (an upper bound of the tree's peak). */
export function treePeakRssMiB(pid: number): number {
  return sumOverTree(pid, peakRssMiB);
}
