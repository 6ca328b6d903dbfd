import { describeOracle, fixtureMatrix } from "./elf-oracle-matrix.js";

for (const c of fixtureMatrix("clang")) describeOracle(c);
