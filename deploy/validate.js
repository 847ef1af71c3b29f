'use strict';

// Refuses to package (and so to deploy) a stage whose params are missing or wrong, with one
// line per problem and no Node stack: deploy/resources.js lists them in `custom.paramProblems`.
class ValidateParams {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = { 'before:package:initialize': () => this.check() };
  }

  check() {
    const problems = (this.serverless.service.custom || {}).paramProblems || [];
    if (problems.length) {
      throw new this.serverless.classes.Error(problems.join('\n'), 'VPCFLOW_INVALID_PARAMS');
    }
  }
}

module.exports = ValidateParams;
