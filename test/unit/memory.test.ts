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

  it('takes a part of a grant into a grant of its own, without waiting, and gives back the rest', async () => {
    // Prepare
    const budget = createMemoryBudget(100);
    const reservation = budget.tryAcquire(40, { background: true });

    // Act
    const first = reservation?.take(15);
    const second = reservation?.take(10);
    const heldWhileSplit = budget.held;
    reservation?.release();
    const heldAfterRest = budget.held;
    first?.release();
    second?.release();

    // Assess
    expect([heldWhileSplit, heldAfterRest, budget.held]).toEqual([40, 25, 0]);
    expect([first?.bytes, second?.bytes, reservation?.bytes]).toEqual([0, 0, 0]);
  });

  it('tryAcquire holds at once what fits, or gives nothing and waits for nothing; never ahead of a waiter', async () => {
    // Prepare
    const budget = createMemoryBudget(100);
    const held = await budget.acquire(70);

    // Act
    const tooMuch = budget.tryAcquire(40);
    const fits = budget.tryAcquire(30);
    fits?.release();
    const waiter = budget.acquire(50);
    const behindWaiter = budget.tryAcquire(10);
    held.release();
    (await waiter).release();
    const aloneWhenNothingHeld = budget.tryAcquire(500);

    // Assess
    expect(tooMuch).toBeUndefined();
    expect(fits?.bytes).toBe(0);
    expect(behindWaiter).toBeUndefined();
    expect(aloneWhenNothingHeld?.bytes).toBe(500);
    expect(budget.waiting).toBe(0);
  });
});
