/**
 * Whether the faces found in one image make it a usable reference: exactly one face, large enough.
 * Pure, so every rule of the face check is a unit test, and the detector (worker threads, a model)
 * stays out of the decision.
 */

/** A face box in some image's pixels (top-left corner and size) and the detector's score, 0..1. */
export interface Face {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly score: number;
}

/** The permanent job codes of the face check (issue 10). */
export const FACE_CODES = ['NO_FACE', 'MULTIPLE_FACES', 'FACE_TOO_SMALL'] as const;
export type FaceCode = (typeof FACE_CODES)[number];

export interface FaceRules {
  /** Faces scoring below this do not count (FACE_MIN_SCORE, default 0.5). */
  readonly minScore: number;
  /** The shorter side of the face box, in stored-image pixels, below which a face is FACE_TOO_SMALL (FACE_MIN_SIZE, default 64). */
  readonly minSize: number;
  /**
   * Stored-image pixels per detector-input pixel (stored width ÷ detector input width): the
   * detector sees a downscaled copy, the rules and the box given to the verification service are
   * about the stored image. 1 when the detector saw the stored pixels themselves.
   */
  readonly scaleToStored: number;
}

export const DEFAULT_FACE_MIN_SCORE = 0.5;
export const DEFAULT_FACE_MIN_SIZE = 64;

/**
 * The verdict on one image. Messages read after the image's label ("image 2 shows 3 faces…") and
 * name the setting that decided, so an operator knows what to change.
 */
export type FaceVerdict =
  | { readonly ok: true; readonly face: Face }
  | { readonly ok: false; readonly code: FaceCode; readonly message: string; readonly faces: number };

/** A box in stored-image pixels: whole pixels, as the S3 metadata and the outcome carry them. */
export function toStoredPixels(face: Face, scaleToStored: number): Face {
  const x = Math.round(face.x * scaleToStored);
  const y = Math.round(face.y * scaleToStored);
  return {
    x,
    y,
    width: Math.round((face.x + face.width) * scaleToStored) - x,
    height: Math.round((face.y + face.height) * scaleToStored) - y,
    score: face.score,
  };
}

/**
 * The rules, in order: no face scoring at least minScore is NO_FACE; among those that do, the ones
 * of at least minSize (in stored pixels) are the faces that count — two or more is MULTIPLE_FACES,
 * exactly one is the reference's face, whatever smaller faces are in the background; when every
 * face scoring enough is smaller than minSize, it is FACE_TOO_SMALL (about the largest of them).
 */
export function faceVerdict(faces: readonly Face[], rules: FaceRules): FaceVerdict {
  if (!(rules.scaleToStored > 0) || !Number.isFinite(rules.scaleToStored)) {
    // A caller bug, not a property of the job: thrown, so the job is retried rather than refused.
    throw new RangeError(`scaleToStored must be a positive number, not ${rules.scaleToStored}`);
  }
  const scored = faces.filter((f) => f.score >= rules.minScore).map((f) => toStoredPixels(f, rules.scaleToStored));
  if (scored.length === 0) {
    return {
      ok: false,
      code: 'NO_FACE',
      message: `shows no face with a score of at least ${rules.minScore} (FACE_MIN_SCORE)`,
      faces: 0,
    };
  }
  const side = (f: Face) => Math.min(f.width, f.height);
  const counted = scored.filter((f) => side(f) >= rules.minSize);
  if (counted.length > 1) {
    return {
      ok: false,
      code: 'MULTIPLE_FACES',
      message: `shows ${counted.length} faces of at least ${rules.minSize} pixels (FACE_MIN_SIZE) with a score of at least ${rules.minScore} (FACE_MIN_SCORE); a reference must show exactly one`,
      faces: counted.length,
    };
  }
  const [face] = counted;
  if (face !== undefined) return { ok: true, face };
  const largest = Math.max(...scored.map(side));
  return {
    ok: false,
    code: 'FACE_TOO_SMALL',
    message: `shows a face of ${largest} pixels on its shorter side; at least ${rules.minSize} are needed (FACE_MIN_SIZE)`,
    faces: scored.length,
  };
}
