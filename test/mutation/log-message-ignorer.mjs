// A Stryker ignorer (stryker.config.json, "ignorers"): the message text of a log call is not
// behaviour — no test should pin its wording — so mutants of it are not made. Only the last
// argument of `log.<level>(...)` / `log[level](...)` when it is a string or template literal: the
// fields object before it (outcome, code, reason, durations) is behaviour and stays mutated.
import { declareValuePlugin, PluginKind } from '@stryker-mutator/api/plugin';

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

/** `log.warn`, `deps.log.error`, `log[level]`: a member call on something named `log`. */
function isLogCall(call) {
  if (call?.type !== 'CallExpression' || call.callee.type !== 'MemberExpression') return false;
  const { object, property, computed } = call.callee;
  const target = object.type === 'Identifier' ? object.name : object.type === 'MemberExpression' && !object.computed ? object.property.name : undefined;
  if (target !== 'log') return false;
  return computed ? property.type === 'Identifier' : LEVELS.has(property.name);
}

const logMessageIgnorer = {
  shouldIgnore(path) {
    const { node, parent } = path;
    if (node.type !== 'StringLiteral' && node.type !== 'TemplateLiteral') return undefined;
    if (!isLogCall(parent) || parent.arguments.at(-1) !== node) return undefined;
    return 'a log message: wording, not behaviour';
  },
};

export const strykerPlugins = [declareValuePlugin(PluginKind.Ignore, 'log-messages', logMessageIgnorer)];
