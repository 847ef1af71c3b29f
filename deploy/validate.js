'use strict';

// Refuses to package (and so to deploy) a stage whose params are missing or wrong, with one
// line per problem and no Node stack: deploy/resources.js lists them in `custom.paramProblems`,
// and what deserves a word but no refusal in `custom.paramWarnings`.
class ValidateParams {
  constructor(serverless, options, { log } = {}) {
    this.serverless = serverless;
    this.log = log;
    this.hooks = { 'before:package:initialize': () => this.check() };
  }

  check() {
    const custom = this.serverless.service.custom || {};
    const problems = custom.paramProblems || [];
    if (problems.length) {
      throw new this.serverless.classes.Error(problems.join('\n'), 'VPCFLOW_INVALID_PARAMS');
    }
    for (const warning of custom.paramWarnings || []) {
      if (this.log) this.log.warning(warning);
      else process.stderr.write(`Warning: ${warning}\n`);
    }
  }
}

module.exports = ValidateParams;
