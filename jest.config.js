// One jest run covers unit tests next to the code (libs/, services/) and the
// cross-service tests under test/. Sources are transpiled by ts-jest without
// type-checking (npm run typecheck does that), so a run starts quickly.
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/libs', '<rootDir>/services', '<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', diagnostics: false }],
  },
  moduleNameMapper: {
    '^@autoglm/(proto|core|runtime|store|client)$': '<rootDir>/libs/$1/src/index.ts',
    '^@autoglm/(parser|decision|executor-agent|monitor)$': '<rootDir>/services/$1/src/index.ts',
  },
  modulePathIgnorePatterns: ['<rootDir>/.*/dist/'],
  testTimeout: 30000,
};
