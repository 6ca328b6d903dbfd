/**
 * DWARF constants with the spec's spelling [DWARF5 7.5–7.25], plus the GNU extensions GCC still emits
 * for DWARF 4 (`DW_TAG_GNU_call_site`, `DW_FORM_GNU_*`). Only the tags and attributes graft reads
 * are named here; the form table is complete, since skipping an attribute needs its form.
 */

/** Unit types of a DWARF 5 unit header [DWARF5 7.5.1]. */
export const DW_UT = {
  DW_UT_compile: 0x01,
  DW_UT_type: 0x02,
  DW_UT_partial: 0x03,
  DW_UT_skeleton: 0x04,
  DW_UT_split_compile: 0x05,
  DW_UT_split_type: 0x06,
} as const;

export const DW_TAG = {
  DW_TAG_array_type: 0x01,
  DW_TAG_class_type: 0x02,
  DW_TAG_entry_point: 0x03,
  DW_TAG_enumeration_type: 0x04,
  DW_TAG_formal_parameter: 0x05,
  DW_TAG_lexical_block: 0x0b,
  DW_TAG_member: 0x0d,
  DW_TAG_pointer_type: 0x0f,
  DW_TAG_compile_unit: 0x11,
  DW_TAG_structure_type: 0x13,
  DW_TAG_subroutine_type: 0x15,
  DW_TAG_typedef: 0x16,
  DW_TAG_union_type: 0x17,
  DW_TAG_inlined_subroutine: 0x1d,
  DW_TAG_base_type: 0x24,
  DW_TAG_const_type: 0x26,
  DW_TAG_subprogram: 0x2e,
  DW_TAG_variable: 0x34,
  DW_TAG_namespace: 0x39,
  DW_TAG_imported_unit: 0x3d,
  DW_TAG_partial_unit: 0x3c,
  DW_TAG_type_unit: 0x41,
  DW_TAG_call_site: 0x48,
  DW_TAG_call_site_parameter: 0x49,
  DW_TAG_skeleton_unit: 0x4a,
  DW_TAG_GNU_call_site: 0x4109,
  DW_TAG_GNU_call_site_parameter: 0x410a,
} as const;

export const DW_AT = {
  DW_AT_sibling: 0x01,
  DW_AT_location: 0x02,
  DW_AT_name: 0x03,
  DW_AT_byte_size: 0x0b,
  DW_AT_stmt_list: 0x10,
  DW_AT_low_pc: 0x11,
  DW_AT_high_pc: 0x12,
  DW_AT_language: 0x13,
  DW_AT_comp_dir: 0x1b,
  DW_AT_const_value: 0x1c,
  DW_AT_inline: 0x20,
  DW_AT_producer: 0x25,
  DW_AT_prototyped: 0x27,
  DW_AT_abstract_origin: 0x31,
  DW_AT_declaration: 0x3c,
  DW_AT_decl_column: 0x39,
  DW_AT_decl_file: 0x3a,
  DW_AT_decl_line: 0x3b,
  DW_AT_external: 0x3f,
  DW_AT_specification: 0x47,
  DW_AT_type: 0x49,
  DW_AT_ranges: 0x55,
  DW_AT_entry_pc: 0x52,
  DW_AT_call_column: 0x57,
  DW_AT_call_file: 0x58,
  DW_AT_call_line: 0x59,
  DW_AT_artificial: 0x34,
  DW_AT_linkage_name: 0x6e,
  DW_AT_str_offsets_base: 0x72,
  DW_AT_addr_base: 0x73,
  DW_AT_rnglists_base: 0x74,
  DW_AT_dwo_name: 0x76,
  DW_AT_call_all_calls: 0x7a,
  DW_AT_call_return_pc: 0x7d,
  DW_AT_call_origin: 0x7f,
  DW_AT_call_pc: 0x81,
  DW_AT_call_tail_call: 0x82,
  DW_AT_call_target: 0x83,
  DW_AT_loclists_base: 0x8c,
  DW_AT_MIPS_linkage_name: 0x2007,
  DW_AT_GNU_tail_call: 0x2115,
  DW_AT_GNU_all_call_sites: 0x2117,
  DW_AT_GNU_dwo_name: 0x2130,
  DW_AT_GNU_ranges_base: 0x2132,
  DW_AT_GNU_addr_base: 0x2133,
} as const;

/** Every attribute form [DWARF5 7.5.6, table 7.6] and the GNU ones of DWARF 4 split/dwz builds. */
export const DW_FORM = {
  DW_FORM_addr: 0x01,
  DW_FORM_block2: 0x03,
  DW_FORM_block4: 0x04,
  DW_FORM_data2: 0x05,
  DW_FORM_data4: 0x06,
  DW_FORM_data8: 0x07,
  DW_FORM_string: 0x08,
  DW_FORM_block: 0x09,
  DW_FORM_block1: 0x0a,
  DW_FORM_data1: 0x0b,
  DW_FORM_flag: 0x0c,
  DW_FORM_sdata: 0x0d,
  DW_FORM_strp: 0x0e,
  DW_FORM_udata: 0x0f,
  DW_FORM_ref_addr: 0x10,
  DW_FORM_ref1: 0x11,
  DW_FORM_ref2: 0x12,
  DW_FORM_ref4: 0x13,
  DW_FORM_ref8: 0x14,
  DW_FORM_ref_udata: 0x15,
  DW_FORM_indirect: 0x16,
  DW_FORM_sec_offset: 0x17,
  DW_FORM_exprloc: 0x18,
  DW_FORM_flag_present: 0x19,
  DW_FORM_strx: 0x1a,
  DW_FORM_addrx: 0x1b,
  DW_FORM_ref_sup4: 0x1c,
  DW_FORM_strp_sup: 0x1d,
  DW_FORM_data16: 0x1e,
  DW_FORM_line_strp: 0x1f,
  DW_FORM_ref_sig8: 0x20,
  DW_FORM_implicit_const: 0x21,
  DW_FORM_loclistx: 0x22,
  DW_FORM_rnglistx: 0x23,
  DW_FORM_ref_sup8: 0x24,
  DW_FORM_strx1: 0x25,
  DW_FORM_strx2: 0x26,
  DW_FORM_strx3: 0x27,
  DW_FORM_strx4: 0x28,
  DW_FORM_addrx1: 0x29,
  DW_FORM_addrx2: 0x2a,
  DW_FORM_addrx3: 0x2b,
  DW_FORM_addrx4: 0x2c,
  DW_FORM_GNU_addr_index: 0x1f01,
  DW_FORM_GNU_str_index: 0x1f02,
  DW_FORM_GNU_ref_alt: 0x1f20,
  DW_FORM_GNU_strp_alt: 0x1f21,
} as const;

/** DW_AT_inline values [DWARF5 7.12]. */
export const DW_INL = {
  DW_INL_not_inlined: 0,
  DW_INL_inlined: 1,
  DW_INL_declared_not_inlined: 2,
  DW_INL_declared_inlined: 3,
} as const;

/** Range list entry kinds of .debug_rnglists [DWARF5 7.25]. */
export const DW_RLE = {
  DW_RLE_end_of_list: 0x00,
  DW_RLE_base_addressx: 0x01,
  DW_RLE_startx_endx: 0x02,
  DW_RLE_startx_length: 0x03,
  DW_RLE_offset_pair: 0x04,
  DW_RLE_base_address: 0x05,
  DW_RLE_start_end: 0x06,
  DW_RLE_start_length: 0x07,
} as const;

/** Line number program opcodes [DWARF5 6.2.5.2, 6.2.5.3]. */
export const DW_LNS = {
  DW_LNS_copy: 0x01,
  DW_LNS_advance_pc: 0x02,
  DW_LNS_advance_line: 0x03,
  DW_LNS_set_file: 0x04,
  DW_LNS_set_column: 0x05,
  DW_LNS_negate_stmt: 0x06,
  DW_LNS_set_basic_block: 0x07,
  DW_LNS_const_add_pc: 0x08,
  DW_LNS_fixed_advance_pc: 0x09,
  DW_LNS_set_prologue_end: 0x0a,
  DW_LNS_set_epilogue_begin: 0x0b,
  DW_LNS_set_isa: 0x0c,
} as const;

export const DW_LNE = {
  DW_LNE_end_sequence: 0x01,
  DW_LNE_set_address: 0x02,
  DW_LNE_define_file: 0x03,
  DW_LNE_set_discriminator: 0x04,
} as const;

/** Line table entry content types of DWARF 5 [DWARF5 6.2.4.1]. */
export const DW_LNCT = {
  DW_LNCT_path: 0x1,
  DW_LNCT_directory_index: 0x2,
  DW_LNCT_timestamp: 0x3,
  DW_LNCT_size: 0x4,
  DW_LNCT_MD5: 0x5,
} as const;

/** Source languages graft names [DWARF5 7.12, table 7.17]. */
export const DW_LANG = {
  DW_LANG_C89: 0x0001,
  DW_LANG_C: 0x0002,
  DW_LANG_C_plus_plus: 0x0004,
  DW_LANG_C99: 0x000c,
  DW_LANG_C_plus_plus_03: 0x0019,
  DW_LANG_C_plus_plus_11: 0x001a,
  DW_LANG_Rust: 0x001c,
  DW_LANG_C11: 0x001d,
  DW_LANG_C_plus_plus_14: 0x0021,
  DW_LANG_C17: 0x002c,
  DW_LANG_Mips_Assembler: 0x8001,
} as const;
