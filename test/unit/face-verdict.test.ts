// The face check's rules (issues 10 and 21): exactly one face at or above FACE_MIN_SCORE whose box's
// shorter side is at least FACE_MIN_SIZE pixels of the stored image; smaller faces do not count.
import { describe, expect, it } from 'vitest';
import { faceVerdict, toStoredPixels, type Face, type FaceRules } from '../../src/face/verdict.ts';
import { thrownBy } from './helpers.ts';

const face = (overrides: Partial<Face> = {}): Face => ({ x: 100, y: 80, width: 120, height: 140, score: 0.9, ...overrides });
const RULES: FaceRules = { minScore: 0.5, minSize: 64, scaleToStored: 1 };

describe('faceVerdict', () => {
  it('accepts exactly one face of sufficient score and size, and gives its box', () => {
    // Act
    const verdict = faceVerdict([face()], RULES);

    // Assess
    expect(verdict).toEqual({ ok: true, face: { x: 100, y: 80, width: 120, height: 140, score: 0.9 } });
  });

  it('is NO_FACE when nothing was found', () => {
    // Act
    const verdict = faceVerdict([], RULES);

    // Assess
    expect(verdict).toEqual({
      ok: false,
      code: 'NO_FACE',
      message: 'shows no face with a score of at least 0.5 (FACE_MIN_SCORE)',
      faces: 0,
    });
  });

  it('is NO_FACE when every face scores under FACE_MIN_SCORE, and counts one exactly at it', () => {
    // Act
    const below = faceVerdict([face({ score: 0.49 }), face({ x: 400, score: 0.2 })], RULES);
    const at = faceVerdict([face({ score: 0.5 })], RULES);

    // Assess
    expect(below).toMatchObject({ ok: false, code: 'NO_FACE' });
    expect(at).toMatchObject({ ok: true });
  });

  it('is MULTIPLE_FACES, saying how many, when more than one face counts', () => {
    // Act
    const verdict = faceVerdict([face(), face({ x: 400 }), face({ x: 700, score: 0.6 })], RULES);

    // Assess
    expect(verdict).toEqual({
      ok: false,
      code: 'MULTIPLE_FACES',
      message: 'shows 3 faces of at least 64 pixels (FACE_MIN_SIZE) with a score of at least 0.5 (FACE_MIN_SCORE); a reference must show exactly one',
      faces: 3,
    });
  });

  it('ignores faces under FACE_MIN_SCORE when counting', () => {
    // Act
    const verdict = faceVerdict([face(), face({ x: 400, score: 0.3 })], RULES);

    // Assess
    expect(verdict).toMatchObject({ ok: true, face: { x: 100 } });
  });

  it('does not count a face under FACE_MIN_SIZE beside one at or above it: a small face in the background does not block', () => {
    // Act
    const verdict = faceVerdict([face({ x: 400, width: 30, height: 30, score: 0.95 }), face()], RULES);

    // Assess
    expect(verdict).toEqual({ ok: true, face: face() });
  });

  it('is MULTIPLE_FACES when two faces are at or above FACE_MIN_SIZE, however small a third', () => {
    // Act
    const verdict = faceVerdict([face(), face({ x: 400, width: 64, height: 70, score: 0.6 }), face({ x: 700, width: 20, height: 20 })], RULES);

    // Assess
    expect(verdict).toMatchObject({ ok: false, code: 'MULTIPLE_FACES', faces: 2 });
  });

  it('is FACE_TOO_SMALL, about the largest, when several faces score enough and none reaches FACE_MIN_SIZE', () => {
    // Act
    const verdict = faceVerdict([face({ width: 40, height: 50 }), face({ x: 400, width: 60, height: 61, score: 0.6 }), face({ x: 700, width: 90, height: 90, score: 0.2 })], RULES);

    // Assess
    expect(verdict).toEqual({
      ok: false,
      code: 'FACE_TOO_SMALL',
      message: 'shows a face of 60 pixels on its shorter side; at least 64 are needed (FACE_MIN_SIZE)',
      faces: 2,
    });
  });

  it('is FACE_TOO_SMALL when the shorter side of the one face is under FACE_MIN_SIZE', () => {
    // Act
    const verdict = faceVerdict([face({ width: 63, height: 90 })], RULES);
    const exactly = faceVerdict([face({ width: 90, height: 64 })], RULES);

    // Assess
    expect(verdict).toEqual({
      ok: false,
      code: 'FACE_TOO_SMALL',
      message: 'shows a face of 63 pixels on its shorter side; at least 64 are needed (FACE_MIN_SIZE)',
      faces: 1,
    });
    expect(exactly).toMatchObject({ ok: true });
  });

  it('judges the size in stored-image pixels: a 40-pixel face in a copy at 1/2 scale is 80 stored pixels', () => {
    // Act
    const verdict = faceVerdict([face({ x: 10.2, y: 20.6, width: 40, height: 50 })], { ...RULES, scaleToStored: 2 });
    const tooSmall = faceVerdict([face({ width: 40, height: 50 })], { ...RULES, scaleToStored: 1.5 });

    // Assess
    expect(verdict).toEqual({ ok: true, face: { x: 20, y: 41, width: 80, height: 100, score: 0.9 } });
    expect(tooSmall).toMatchObject({ ok: false, code: 'FACE_TOO_SMALL', message: expect.stringContaining('a face of 60 pixels') });
  });

  it('refuses a scale that is not a positive number: a caller bug, thrown rather than a verdict', () => {
    // Act
    const errors = [0, -1, Number.NaN, Number.POSITIVE_INFINITY].map((scaleToStored) =>
      thrownBy(() => faceVerdict([face()], { ...RULES, scaleToStored })),
    );

    // Assess
    for (const error of errors) expect(error).toBeInstanceOf(RangeError);
  });
});

describe('toStoredPixels', () => {
  it('rounds the edges, not the sizes, so a box keeps covering the same pixels', () => {
    // Act
    const stored = toStoredPixels({ x: 1.4, y: 2.6, width: 10.2, height: 10.2, score: 0.8 }, 3);

    // Assess: edges 4.2→4, 34.8→35; 7.8→8, 38.4→38
    expect(stored).toEqual({ x: 4, y: 8, width: 31, height: 30, score: 0.8 });
  });
});

describe('faceVerdict: a caller bug', () => {
  it('says which scale it was given', () => {
    // Act
    const error = thrownBy(() => faceVerdict([], { minScore: 0.5, minSize: 64, scaleToStored: 0 }));

    // Assess
    expect(error).toMatchObject({ name: 'RangeError', message: 'scaleToStored must be a positive number, not 0' });
  });
});
