/*
 * DuckDB, loaded when SQL is first used (src/query/duck.c).
 *
 * Every DuckDB C API function the query module calls is a member of
 * udr__duck, filled by dlopen/dlsym in udr__duck_load; this header then
 * redirects each name to its member, so the module's call sites read as
 * plain DuckDB calls.  The members' types are __typeof__ of duckdb.h's own
 * declarations, so every call is still checked against the real prototypes.
 * Why lazily: linking libduckdb.so costs every udr process its relocation
 * (docs/ARCHITECTURE.md, Installation and DuckDB).
 *
 * To call another DuckDB function, add it to UDR__DUCK_API and to the
 * #define list below.  A name in only one of them fails the build: a member
 * without its #define leaves a call to the real symbol, which nothing links
 * (undefined reference); a #define without its member does not compile.
 * Include this header instead of <duckdb.h>.
 */
#ifndef UDR_QUERY_DUCK_H
#define UDR_QUERY_DUCK_H

#include <duckdb.h>

#define UDR__DUCK_API(X) \
	X(duckdb_add_replacement_scan) \
	X(duckdb_append_bool) \
	X(duckdb_append_int64) \
	X(duckdb_append_null) \
	X(duckdb_append_timestamp) \
	X(duckdb_append_varchar) \
	X(duckdb_appender_close) \
	X(duckdb_appender_create_ext) \
	X(duckdb_appender_destroy) \
	X(duckdb_appender_end_row) \
	X(duckdb_appender_error) \
	X(duckdb_array_type_array_size) \
	X(duckdb_array_type_child_type) \
	X(duckdb_array_vector_get_child) \
	X(duckdb_bind_add_result_column) \
	X(duckdb_bind_blob) \
	X(duckdb_bind_date) \
	X(duckdb_bind_decimal) \
	X(duckdb_bind_hugeint) \
	X(duckdb_bind_time) \
	X(duckdb_bind_timestamp) \
	X(duckdb_bind_timestamp_tz) \
	X(duckdb_bind_boolean) \
	X(duckdb_bind_double) \
	X(duckdb_bind_int64) \
	X(duckdb_bind_null) \
	X(duckdb_bind_varchar_length) \
	X(duckdb_close) \
	X(duckdb_column_count) \
	X(duckdb_column_logical_type) \
	X(duckdb_column_name) \
	X(duckdb_connect) \
	X(duckdb_create_array_value) \
	X(duckdb_create_blob) \
	X(duckdb_create_bit) \
	X(duckdb_create_bool) \
	X(duckdb_create_config) \
	X(duckdb_create_date) \
	X(duckdb_create_decimal) \
	X(duckdb_create_double) \
	X(duckdb_create_enum_value) \
	X(duckdb_create_float) \
	X(duckdb_create_hugeint) \
	X(duckdb_create_int16) \
	X(duckdb_create_int32) \
	X(duckdb_create_int64) \
	X(duckdb_create_int8) \
	X(duckdb_create_interval) \
	X(duckdb_create_list_value) \
	X(duckdb_create_logical_type) \
	X(duckdb_create_map_value) \
	X(duckdb_create_null_value) \
	X(duckdb_create_scalar_function) \
	X(duckdb_create_struct_value) \
	X(duckdb_create_table_function) \
	X(duckdb_create_time) \
	X(duckdb_create_time_ns) \
	X(duckdb_create_time_tz_value) \
	X(duckdb_create_timestamp) \
	X(duckdb_create_timestamp_ms) \
	X(duckdb_create_timestamp_ns) \
	X(duckdb_create_timestamp_s) \
	X(duckdb_create_timestamp_tz) \
	X(duckdb_create_uhugeint) \
	X(duckdb_create_uint16) \
	X(duckdb_create_uint32) \
	X(duckdb_create_uint64) \
	X(duckdb_create_uint8) \
	X(duckdb_create_union_value) \
	X(duckdb_create_uuid) \
	X(duckdb_create_varchar) \
	X(duckdb_create_varchar_length) \
	X(duckdb_data_chunk_get_size) \
	X(duckdb_data_chunk_get_vector) \
	X(duckdb_data_chunk_set_size) \
	X(duckdb_decimal_internal_type) \
	X(duckdb_decimal_scale) \
	X(duckdb_decimal_width) \
	X(duckdb_destroy_config) \
	X(duckdb_destroy_data_chunk) \
	X(duckdb_destroy_extracted) \
	X(duckdb_destroy_logical_type) \
	X(duckdb_destroy_pending) \
	X(duckdb_destroy_prepare) \
	X(duckdb_destroy_result) \
	X(duckdb_destroy_scalar_function) \
	X(duckdb_destroy_table_function) \
	X(duckdb_destroy_value) \
	X(duckdb_disconnect) \
	X(duckdb_enum_internal_type) \
	X(duckdb_execute_pending) \
	X(duckdb_execute_prepared) \
	X(duckdb_extract_statements) \
	X(duckdb_extract_statements_error) \
	X(duckdb_fetch_chunk) \
	X(duckdb_free) \
	X(duckdb_function_get_extra_info) \
	X(duckdb_function_get_init_data) \
	X(duckdb_function_set_error) \
	X(duckdb_get_type_id) \
	X(duckdb_get_varchar) \
	X(duckdb_init_get_column_count) \
	X(duckdb_init_get_column_index) \
	X(duckdb_init_get_extra_info) \
	X(duckdb_init_set_error) \
	X(duckdb_init_set_init_data) \
	X(duckdb_init_set_max_threads) \
	X(duckdb_list_type_child_type) \
	X(duckdb_list_vector_get_child) \
	X(duckdb_logical_type_get_alias) \
	X(duckdb_map_type_key_type) \
	X(duckdb_map_type_value_type) \
	X(duckdb_nparams) \
	X(duckdb_open_ext) \
	X(duckdb_pending_error) \
	X(duckdb_pending_prepared_streaming) \
	X(duckdb_prepare_error) \
	X(duckdb_prepare_extracted_statement) \
	X(duckdb_prepared_statement_column_count) \
	X(duckdb_prepared_statement_column_logical_type) \
	X(duckdb_prepared_statement_column_name) \
	X(duckdb_prepared_statement_type) \
	X(duckdb_query) \
	X(duckdb_register_scalar_function) \
	X(duckdb_register_table_function) \
	X(duckdb_replacement_scan_add_parameter) \
	X(duckdb_replacement_scan_set_error) \
	X(duckdb_replacement_scan_set_function_name) \
	X(duckdb_result_error) \
	X(duckdb_scalar_function_add_parameter) \
	X(duckdb_scalar_function_get_extra_info) \
	X(duckdb_scalar_function_set_extra_info) \
	X(duckdb_scalar_function_set_function) \
	X(duckdb_scalar_function_set_name) \
	X(duckdb_scalar_function_set_return_type) \
	X(duckdb_set_config) \
	X(duckdb_string_t_data) \
	X(duckdb_string_t_length) \
	X(duckdb_struct_type_child_count) \
	X(duckdb_struct_type_child_name) \
	X(duckdb_struct_type_child_type) \
	X(duckdb_struct_vector_get_child) \
	X(duckdb_table_function_set_bind) \
	X(duckdb_table_function_set_extra_info) \
	X(duckdb_table_function_set_function) \
	X(duckdb_table_function_set_init) \
	X(duckdb_table_function_set_name) \
	X(duckdb_table_function_supports_projection_pushdown) \
	X(duckdb_union_type_member_count) \
	X(duckdb_union_type_member_name) \
	X(duckdb_union_type_member_type) \
	X(duckdb_validity_row_is_valid) \
	X(duckdb_validity_set_row_invalid) \
	X(duckdb_vector_assign_string_element) \
	X(duckdb_vector_ensure_validity_writable) \
	X(duckdb_vector_get_data) \
	X(duckdb_vector_get_validity) \
	X(duckdb_vector_size)

typedef struct udr__duck_api {
#define UDR__DUCK_MEMBER(name) __typeof__(name) *name;
	UDR__DUCK_API(UDR__DUCK_MEMBER)
#undef UDR__DUCK_MEMBER
} udr__duck_api;

/* Filled once by udr__duck_load; read-only afterwards. */
extern udr__duck_api udr__duck;

/*
 * Load libduckdb.so and resolve every function of UDR__DUCK_API, once per
 * process (later calls return the first outcome).  The library is
 * $UDR_DUCKDB_LIBRARY when set, else "libduckdb.so" found through the
 * runpath of the object holding this code (the build tree's .deps, the
 * installed lib directory, the Python package's directory) or the system's
 * search path.  It is never unloaded.
 * @return 0, or UDR_ERROR naming the library and the loader's reason.
 */
int udr__duck_load(void);

#ifndef UDR__DUCK_NO_REDIRECT
/* The functions that release DuckDB's objects do nothing while DuckDB is
 * not loaded: a session whose DuckDB could not start runs its callers'
 * cleanup (of NULL handles) on the way out.  Every other function is only
 * reached through an object DuckDB made, so after a successful load. */
#define duckdb_add_replacement_scan (udr__duck.duckdb_add_replacement_scan)
#define duckdb_append_bool (udr__duck.duckdb_append_bool)
#define duckdb_append_int64 (udr__duck.duckdb_append_int64)
#define duckdb_append_null (udr__duck.duckdb_append_null)
#define duckdb_append_timestamp (udr__duck.duckdb_append_timestamp)
#define duckdb_append_varchar (udr__duck.duckdb_append_varchar)
#define duckdb_appender_close (udr__duck.duckdb_appender_close)
#define duckdb_appender_create_ext (udr__duck.duckdb_appender_create_ext)
#define duckdb_appender_destroy(x) (udr__duck.duckdb_appender_destroy ? udr__duck.duckdb_appender_destroy(x) : DuckDBSuccess)
#define duckdb_appender_end_row (udr__duck.duckdb_appender_end_row)
#define duckdb_appender_error (udr__duck.duckdb_appender_error)
#define duckdb_array_type_array_size (udr__duck.duckdb_array_type_array_size)
#define duckdb_array_type_child_type (udr__duck.duckdb_array_type_child_type)
#define duckdb_array_vector_get_child (udr__duck.duckdb_array_vector_get_child)
#define duckdb_bind_add_result_column (udr__duck.duckdb_bind_add_result_column)
#define duckdb_bind_blob (udr__duck.duckdb_bind_blob)
#define duckdb_bind_date (udr__duck.duckdb_bind_date)
#define duckdb_bind_decimal (udr__duck.duckdb_bind_decimal)
#define duckdb_bind_hugeint (udr__duck.duckdb_bind_hugeint)
#define duckdb_bind_time (udr__duck.duckdb_bind_time)
#define duckdb_bind_timestamp (udr__duck.duckdb_bind_timestamp)
#define duckdb_bind_timestamp_tz (udr__duck.duckdb_bind_timestamp_tz)
#define duckdb_bind_boolean (udr__duck.duckdb_bind_boolean)
#define duckdb_bind_double (udr__duck.duckdb_bind_double)
#define duckdb_bind_int64 (udr__duck.duckdb_bind_int64)
#define duckdb_bind_null (udr__duck.duckdb_bind_null)
#define duckdb_bind_varchar_length (udr__duck.duckdb_bind_varchar_length)
#define duckdb_close(x) (udr__duck.duckdb_close ? udr__duck.duckdb_close(x) : (void)0)
#define duckdb_column_count (udr__duck.duckdb_column_count)
#define duckdb_column_logical_type (udr__duck.duckdb_column_logical_type)
#define duckdb_column_name (udr__duck.duckdb_column_name)
#define duckdb_connect (udr__duck.duckdb_connect)
#define duckdb_create_array_value (udr__duck.duckdb_create_array_value)
#define duckdb_create_blob (udr__duck.duckdb_create_blob)
#define duckdb_create_bit (udr__duck.duckdb_create_bit)
#define duckdb_create_bool (udr__duck.duckdb_create_bool)
#define duckdb_create_config (udr__duck.duckdb_create_config)
#define duckdb_create_date (udr__duck.duckdb_create_date)
#define duckdb_create_decimal (udr__duck.duckdb_create_decimal)
#define duckdb_create_double (udr__duck.duckdb_create_double)
#define duckdb_create_enum_value (udr__duck.duckdb_create_enum_value)
#define duckdb_create_float (udr__duck.duckdb_create_float)
#define duckdb_create_hugeint (udr__duck.duckdb_create_hugeint)
#define duckdb_create_int16 (udr__duck.duckdb_create_int16)
#define duckdb_create_int32 (udr__duck.duckdb_create_int32)
#define duckdb_create_int64 (udr__duck.duckdb_create_int64)
#define duckdb_create_int8 (udr__duck.duckdb_create_int8)
#define duckdb_create_interval (udr__duck.duckdb_create_interval)
#define duckdb_create_list_value (udr__duck.duckdb_create_list_value)
#define duckdb_create_logical_type (udr__duck.duckdb_create_logical_type)
#define duckdb_create_map_value (udr__duck.duckdb_create_map_value)
#define duckdb_create_null_value (udr__duck.duckdb_create_null_value)
#define duckdb_create_scalar_function (udr__duck.duckdb_create_scalar_function)
#define duckdb_create_struct_value (udr__duck.duckdb_create_struct_value)
#define duckdb_create_table_function (udr__duck.duckdb_create_table_function)
#define duckdb_create_time (udr__duck.duckdb_create_time)
#define duckdb_create_time_ns (udr__duck.duckdb_create_time_ns)
#define duckdb_create_time_tz_value (udr__duck.duckdb_create_time_tz_value)
#define duckdb_create_timestamp (udr__duck.duckdb_create_timestamp)
#define duckdb_create_timestamp_ms (udr__duck.duckdb_create_timestamp_ms)
#define duckdb_create_timestamp_ns (udr__duck.duckdb_create_timestamp_ns)
#define duckdb_create_timestamp_s (udr__duck.duckdb_create_timestamp_s)
#define duckdb_create_timestamp_tz (udr__duck.duckdb_create_timestamp_tz)
#define duckdb_create_uhugeint (udr__duck.duckdb_create_uhugeint)
#define duckdb_create_uint16 (udr__duck.duckdb_create_uint16)
#define duckdb_create_uint32 (udr__duck.duckdb_create_uint32)
#define duckdb_create_uint64 (udr__duck.duckdb_create_uint64)
#define duckdb_create_uint8 (udr__duck.duckdb_create_uint8)
#define duckdb_create_union_value (udr__duck.duckdb_create_union_value)
#define duckdb_create_uuid (udr__duck.duckdb_create_uuid)
#define duckdb_create_varchar (udr__duck.duckdb_create_varchar)
#define duckdb_create_varchar_length (udr__duck.duckdb_create_varchar_length)
#define duckdb_data_chunk_get_size (udr__duck.duckdb_data_chunk_get_size)
#define duckdb_data_chunk_get_vector (udr__duck.duckdb_data_chunk_get_vector)
#define duckdb_data_chunk_set_size (udr__duck.duckdb_data_chunk_set_size)
#define duckdb_decimal_internal_type (udr__duck.duckdb_decimal_internal_type)
#define duckdb_decimal_scale (udr__duck.duckdb_decimal_scale)
#define duckdb_decimal_width (udr__duck.duckdb_decimal_width)
#define duckdb_destroy_config(x) (udr__duck.duckdb_destroy_config ? udr__duck.duckdb_destroy_config(x) : (void)0)
#define duckdb_destroy_data_chunk(x) (udr__duck.duckdb_destroy_data_chunk ? udr__duck.duckdb_destroy_data_chunk(x) : (void)0)
#define duckdb_destroy_extracted(x) (udr__duck.duckdb_destroy_extracted ? udr__duck.duckdb_destroy_extracted(x) : (void)0)
#define duckdb_destroy_logical_type(x) (udr__duck.duckdb_destroy_logical_type ? udr__duck.duckdb_destroy_logical_type(x) : (void)0)
#define duckdb_destroy_pending(x) (udr__duck.duckdb_destroy_pending ? udr__duck.duckdb_destroy_pending(x) : (void)0)
#define duckdb_destroy_prepare(x) (udr__duck.duckdb_destroy_prepare ? udr__duck.duckdb_destroy_prepare(x) : (void)0)
#define duckdb_destroy_result(x) (udr__duck.duckdb_destroy_result ? udr__duck.duckdb_destroy_result(x) : (void)0)
#define duckdb_destroy_scalar_function(x) (udr__duck.duckdb_destroy_scalar_function ? udr__duck.duckdb_destroy_scalar_function(x) : (void)0)
#define duckdb_destroy_table_function(x) (udr__duck.duckdb_destroy_table_function ? udr__duck.duckdb_destroy_table_function(x) : (void)0)
#define duckdb_destroy_value(x) (udr__duck.duckdb_destroy_value ? udr__duck.duckdb_destroy_value(x) : (void)0)
#define duckdb_disconnect(x) (udr__duck.duckdb_disconnect ? udr__duck.duckdb_disconnect(x) : (void)0)
#define duckdb_enum_internal_type (udr__duck.duckdb_enum_internal_type)
#define duckdb_execute_pending (udr__duck.duckdb_execute_pending)
#define duckdb_execute_prepared (udr__duck.duckdb_execute_prepared)
#define duckdb_extract_statements (udr__duck.duckdb_extract_statements)
#define duckdb_extract_statements_error (udr__duck.duckdb_extract_statements_error)
#define duckdb_fetch_chunk (udr__duck.duckdb_fetch_chunk)
#define duckdb_free(x) (udr__duck.duckdb_free ? udr__duck.duckdb_free(x) : (void)0)
#define duckdb_function_get_extra_info (udr__duck.duckdb_function_get_extra_info)
#define duckdb_function_get_init_data (udr__duck.duckdb_function_get_init_data)
#define duckdb_function_set_error (udr__duck.duckdb_function_set_error)
#define duckdb_get_type_id (udr__duck.duckdb_get_type_id)
#define duckdb_get_varchar (udr__duck.duckdb_get_varchar)
#define duckdb_init_get_column_count (udr__duck.duckdb_init_get_column_count)
#define duckdb_init_get_column_index (udr__duck.duckdb_init_get_column_index)
#define duckdb_init_get_extra_info (udr__duck.duckdb_init_get_extra_info)
#define duckdb_init_set_error (udr__duck.duckdb_init_set_error)
#define duckdb_init_set_init_data (udr__duck.duckdb_init_set_init_data)
#define duckdb_init_set_max_threads (udr__duck.duckdb_init_set_max_threads)
#define duckdb_list_type_child_type (udr__duck.duckdb_list_type_child_type)
#define duckdb_list_vector_get_child (udr__duck.duckdb_list_vector_get_child)
#define duckdb_logical_type_get_alias (udr__duck.duckdb_logical_type_get_alias)
#define duckdb_map_type_key_type (udr__duck.duckdb_map_type_key_type)
#define duckdb_map_type_value_type (udr__duck.duckdb_map_type_value_type)
#define duckdb_nparams (udr__duck.duckdb_nparams)
#define duckdb_open_ext (udr__duck.duckdb_open_ext)
#define duckdb_pending_error (udr__duck.duckdb_pending_error)
#define duckdb_pending_prepared_streaming (udr__duck.duckdb_pending_prepared_streaming)
#define duckdb_prepare_error (udr__duck.duckdb_prepare_error)
#define duckdb_prepare_extracted_statement (udr__duck.duckdb_prepare_extracted_statement)
#define duckdb_prepared_statement_column_count (udr__duck.duckdb_prepared_statement_column_count)
#define duckdb_prepared_statement_column_logical_type (udr__duck.duckdb_prepared_statement_column_logical_type)
#define duckdb_prepared_statement_column_name (udr__duck.duckdb_prepared_statement_column_name)
#define duckdb_prepared_statement_type (udr__duck.duckdb_prepared_statement_type)
#define duckdb_query (udr__duck.duckdb_query)
#define duckdb_register_scalar_function (udr__duck.duckdb_register_scalar_function)
#define duckdb_register_table_function (udr__duck.duckdb_register_table_function)
#define duckdb_replacement_scan_add_parameter (udr__duck.duckdb_replacement_scan_add_parameter)
#define duckdb_replacement_scan_set_error (udr__duck.duckdb_replacement_scan_set_error)
#define duckdb_replacement_scan_set_function_name (udr__duck.duckdb_replacement_scan_set_function_name)
#define duckdb_result_error (udr__duck.duckdb_result_error)
#define duckdb_scalar_function_add_parameter (udr__duck.duckdb_scalar_function_add_parameter)
#define duckdb_scalar_function_get_extra_info (udr__duck.duckdb_scalar_function_get_extra_info)
#define duckdb_scalar_function_set_extra_info (udr__duck.duckdb_scalar_function_set_extra_info)
#define duckdb_scalar_function_set_function (udr__duck.duckdb_scalar_function_set_function)
#define duckdb_scalar_function_set_name (udr__duck.duckdb_scalar_function_set_name)
#define duckdb_scalar_function_set_return_type (udr__duck.duckdb_scalar_function_set_return_type)
#define duckdb_set_config (udr__duck.duckdb_set_config)
#define duckdb_string_t_data (udr__duck.duckdb_string_t_data)
#define duckdb_string_t_length (udr__duck.duckdb_string_t_length)
#define duckdb_struct_type_child_count (udr__duck.duckdb_struct_type_child_count)
#define duckdb_struct_type_child_name (udr__duck.duckdb_struct_type_child_name)
#define duckdb_struct_type_child_type (udr__duck.duckdb_struct_type_child_type)
#define duckdb_struct_vector_get_child (udr__duck.duckdb_struct_vector_get_child)
#define duckdb_table_function_set_bind (udr__duck.duckdb_table_function_set_bind)
#define duckdb_table_function_set_extra_info (udr__duck.duckdb_table_function_set_extra_info)
#define duckdb_table_function_set_function (udr__duck.duckdb_table_function_set_function)
#define duckdb_table_function_set_init (udr__duck.duckdb_table_function_set_init)
#define duckdb_table_function_set_name (udr__duck.duckdb_table_function_set_name)
#define duckdb_table_function_supports_projection_pushdown (udr__duck.duckdb_table_function_supports_projection_pushdown)
#define duckdb_union_type_member_count (udr__duck.duckdb_union_type_member_count)
#define duckdb_union_type_member_name (udr__duck.duckdb_union_type_member_name)
#define duckdb_union_type_member_type (udr__duck.duckdb_union_type_member_type)
#define duckdb_validity_row_is_valid (udr__duck.duckdb_validity_row_is_valid)
#define duckdb_validity_set_row_invalid (udr__duck.duckdb_validity_set_row_invalid)
#define duckdb_vector_assign_string_element (udr__duck.duckdb_vector_assign_string_element)
#define duckdb_vector_ensure_validity_writable (udr__duck.duckdb_vector_ensure_validity_writable)
#define duckdb_vector_get_data (udr__duck.duckdb_vector_get_data)
#define duckdb_vector_get_validity (udr__duck.duckdb_vector_get_validity)
#define duckdb_vector_size (udr__duck.duckdb_vector_size)
#endif /* UDR__DUCK_NO_REDIRECT */

#endif /* UDR_QUERY_DUCK_H */
