// The memory budget (src/enroll/memory.ts): admission in order, a request larger than the budget
// alone, background holdings, cancellation.
import { describe, expect, it } from 'vitest';
import { createMemoryBudget } from '../../src/enroll/memory.ts';
// Lets queued promise callbacks run.
import { settle as tick } from './helpers.ts';

describe('createMemoryBudget', () => {
  it('admits what fits at once, and makes the rest wait until bytes are released', async () => {
    // Prepare
    const budget = createMemoryBudget(100);
    const a = await budget.acquire(60);

    // Act
    let admitted = false;
    const b = budget.acquire(50).then((g) => {
      admitted = true;
      return g;
    });
    await tick();
    const waitedWhileHeld = !admitted;
    a.release();
    const grant = await b;

    // Assess
    expect(waitedWhileHeld).toBe(true);
    expect(budget.held).toBe(50);
    grant.release();
    expect(budget.held).toBe(0);
    expect(budget.peak).toBe(60);
  });

  it('serves waiters in order: a large request is not overtaken by small ones', async () => {
    // Prepare
    const budget = createMemoryBudget(100);
    const held = await budget.acquire(90);
    const order: string[] = [];

    // Act
    const large = budget.acquire(80).then((g) => (order.push('large'), g));
    const small = budget.acquire(5).then((g) => (order.push('small'), g));
    await tick();
    const beforeRelease = [...order];
    held.release();
    (await large).release();
    (await small).release();

    // Assess
    expect(beforeRelease).toEqual([]);
    expect(order).toEqual(['large', 'small']);
  });

  it('runs a request larger than the whole budget alone, once nothing else is held', async () => {
    // Prepare
    const budget = createMemoryBudget(100);
    const other = await budget.acquire(10);

    // Act
    let admitted = false;
    const huge = budget.acquire(250).then((g) => ((admitted = true), g));
    await tick();
    const whileOtherHeld = admitted;
    other.release();
    const grant = await huge;

    // Assess
    expect(whileOtherHeld).toBe(false);
    expect(budget.held).toBe(250);
    grant.release();
  });

  it('does not let background holdings (received messages) keep an oversize request from running', async () => {
    // Prepare
    const budget = createMemoryBudget(100);
    const message = await budget.acquire(30, { background: true });

    // Act
    const grant = await budget.acquire(250);

    // Assess
    expect(budget.held).toBe(280);
    grant.release();
    message.release();
    expect(budget.held).toBe(0);
  });

  it('takes a cancelled waiter out of the line, and lets the next one in', async () => {
    // Prepare
    const budget = createMemoryBudget(100);
    const held = await budget.acquire(100);
    const cancel = new AbortController();
    const cancelled = budget.acquire(50, { signal: cancel.signal });
    const next = budget.acquire(40);

    // Act
    cancel.abort(new Error('the job failed'));
    const reason = await cancelled.catch((e: unknown) => e);
    held.release();
    const grant = await next;

    // Assess
    expect(reason).toMatchObject({ message: 'the job failed' });
    expect(budget.waiting).toBe(0);
    expect(budget.held).toBe(40);
    grant.release();
  });

  it('releases a grant once, however often it is released', async () => {
    // Prepare
    const budget = createMemoryBudget(100);
    const grant = await budget.acquire(30);

    // Act
    grant.release();
    grant.release();

    // Assess
    expect(budget.held).toBe(0);
  });
});
